-- The dispatcher's claim for ready agents: each agent gets the best task it may take, in one
-- step for several agents (docs/architecture.md, "The claim").
-- For each agent in turn: the lowest-scored queued task of its skills that the routing rule
-- (_routing.lua) lets it take, read from the head of each skill queue, a page at a time and
-- no deeper than the scan limit, is reserved at once; so the next agent cannot get it.
-- KEYS: any key of the pool (declares the slot). ARGV[5..6]: tasks per page, deepest rank;
-- ARGV[7]: the claimer's node (its serve bridges live callers of that node only);
-- ARGV[8..]: agent ids, in the order they are served.
-- Returns {results, bad, wake} as nested arrays (no JSON to build and parse: RESP is
-- cheaper). results[i]: {agent id, 'ok', agent hash, task hash} (both HGETALL, as stored
-- after the claim) or {agent id, 'busy' | 'none' | 'missing' | 'bad'}; bad: ids of tasks
-- that cannot be read (to set aside); wake: {task id, time, ...} of the tasks skipped because
-- they wait for their preferred agent until that time.
local page, depth, now, node = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(NOW), ARGV[7]
local bad, wake = {}, {}
local woken = {}

-- The best task of one skill queue for the agent, if one scores below ``below``.
local function best_in(agent, skill, below)
  local queue = BASE .. 'q:' .. skill
  for offset = 0, depth - 1, page do
    local ids = redis.call('ZRANGE', queue, offset, offset + page - 1, 'WITHSCORES')
    for i = 1, #ids, 2 do
      local score = tonumber(ids[i + 1])
      if below and score >= below then return nil end
      local task, why = routing_task(ids[i])
      if task and claimable_on(task, node) then
        local ok, until_ = may_take(agent, task, now)
        if ok then return ids[i], score end
        if until_ and until_ > now and not woken[ids[i]] then
          woken[ids[i]] = true
          wake[#wake + 1] = ids[i]
          wake[#wake + 1] = task.until_text
        end
      elseif not task and why == 'bad' then
        bad[#bad + 1] = ids[i]
      end
    end
    if #ids < 2 * page then return nil end
  end
  return nil
end

local function serve(agent_id)
  local agent, why = routing_agent(agent_id)
  if not agent then return {agent_id, why} end
  if agent.state ~= 'ready' then return {agent_id, 'busy'} end
  local best, best_score = nil, nil
  for skill, _ in pairs(agent.skills) do
    local id, score = best_in(agent, tostring(skill), best_score)
    if id then best, best_score = id, score end
  end
  if not best then return {agent_id, 'none'} end
  local agent_key, task_key = BASE .. 'agent:' .. agent_id, BASE .. 'task:' .. best
  reserve(agent_key, agent_id, task_key, best, agent.skills)
  return {agent_id, 'ok', redis.call('HGETALL', agent_key), redis.call('HGETALL', task_key)}
end

local results = {}
for i = 8, #ARGV do results[#results + 1] = serve(ARGV[i]) end
return {results, bad, wake}
