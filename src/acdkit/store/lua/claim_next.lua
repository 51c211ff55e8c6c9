-- The dispatcher's claim for ready agents: each agent gets the best task it may take, in one
-- step for several agents (docs/architecture.md, "The claim").
-- For each agent in turn: the lowest-scored queued task of its skills that the routing rule
-- (_routing.lua) lets it take, read from the heads of its skill queues and of its own held
-- line (tasks waiting for it as their preferred agent: _lib.lua) merged by score, a page at a
-- time and no deeper than the scan limit, is reserved at once; so the next agent cannot get
-- it. Held tasks whose agent's time is up go to their skill queue first.
-- KEYS: any key of the pool (declares the slot). ARGV[5..6]: tasks in a line's first page
-- (each next page is twice the one before), deepest rank;
-- ARGV[7]: the claimer's node (its serve bridges live callers of that node only);
-- ARGV[8..]: agent ids, in the order they are served.
-- Returns {results, bad, wake} as nested arrays (no JSON to build and parse: RESP is
-- cheaper). results[i]: {agent id, 'ok', agent hash, task hash} (both HGETALL, as stored
-- after the claim) or {agent id, 'busy' | 'none' | 'missing' | 'bad'}; bad: ids of tasks
-- that cannot be read (to set aside); wake: {task id, time, ...} of the tasks that wait for
-- their preferred agent until that time (the held task whose time is up next, and those met
-- in a skill queue: stored before held lines were kept).
local page, depth, now, node = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(NOW), ARGV[7]
local bad, wake = {}, {}
local woken = {}
-- Tasks read by this claim, by id: agents served later in the same step meet the same heads
-- (tasks waiting for another agent or an attribute), read once. A reserved task leaves its
-- queue, so no later agent meets it again.
local read_tasks = {}
local function task_of(task_id)
  local known = read_tasks[task_id]
  if known == nil then
    local task, why = routing_task(task_id)
    known = task or why
    read_tasks[task_id] = known
  end
  if type(known) == 'table' then return known end
  return nil, known
end

-- Held tasks whose agent's time is up join their skill queue with their stored score (at
-- most ``limit`` per claim; the rest at the next one).
local function free_held(limit)
  local ended = redis.call('ZRANGE', BASE .. 'heldend', '-inf', NOW, 'BYSCORE', 'LIMIT', 0, limit)
  for _, id in ipairs(ended) do
    local t = redis.call('HMGET', BASE .. 'task:' .. id, 'state', 'skill', 'score',
      'preferred_agent')
    unhold(id, t[2], t[4])
    if t[1] == 'queued' and t[2] and t[3] then
      redis.call('ZADD', BASE .. 'q:' .. t[2], t[3], id)
    end
  end
end

-- The best task the agent may take: its skill queues and its held line walked together,
-- lowest score first (a merge of their heads, read a page at a time, each page twice the one
-- before, and no deeper than the scan limit), so a task is read only when no better one is
-- left in any of them, and the first one the agent may take is its best. Returns its id,
-- routing record and 1-based place in its skill's line.
local function best_for(agent)
  local heads = {}
  local function read(head)
    local last = math.min(head.offset + head.size, depth) - 1
    head.ids = redis.call('ZRANGE', head.queue, head.offset, last, 'WITHSCORES')
    head.i = 1
  end
  local function add(queue, own)
    local head = {queue = queue, own = own, offset = 0, size = page}
    read(head)
    heads[#heads + 1] = head
  end
  for skill, _ in pairs(agent.skills) do add(BASE .. 'q:' .. tostring(skill), false) end
  add(BASE .. 'held:' .. agent.id, true)
  while true do
    local pick, pick_score = nil, nil
    for _, head in ipairs(heads) do
      if head.i > #head.ids and #head.ids == 2 * head.size
          and head.offset + head.size < depth then
        head.offset = head.offset + head.size
        head.size = head.size * 2
        read(head)
      end
      if head.i <= #head.ids then
        local score = tonumber(head.ids[head.i + 1])
        if not pick_score or score < pick_score then pick, pick_score = head, score end
      end
    end
    if not pick then return nil end
    local id, score_text = pick.ids[pick.i], pick.ids[pick.i + 1]
    local rank = nil  -- in its skill queue, as read (this walk takes nothing out of one)
    if not pick.own then rank = pick.offset + (pick.i - 1) / 2 end
    pick.i = pick.i + 2
    local task, why = task_of(id)
    if pick.own and (not task or task.state ~= 'queued' or task.preferred ~= agent.id) then
      redis.call('ZREM', pick.queue, id)  -- no longer held for this agent (set aside, moved)
      if not task and why == 'bad' then bad[#bad + 1] = id end
    elseif task and claimable_on(task, node) then
      local ok, until_ = may_take(agent, task, now)
      if ok then return id, task, place_in_line(task.skill, id, score_text, rank) end
      if until_ and until_ > now and not woken[id] then
        woken[id] = true
        wake[#wake + 1] = id
        wake[#wake + 1] = task.until_text
      end
    elseif not task and why == 'bad' then
      bad[#bad + 1] = id
    end
  end
end

local function serve(agent_id)
  local agent_key = BASE .. 'agent:' .. agent_id
  local hash = redis.call('HGETALL', agent_key)
  local agent, why = routing_agent(agent_id, hash)
  if not agent then return {agent_id, why} end
  if agent.state ~= 'ready' then return {agent_id, 'busy'} end
  local best, task, pos = best_for(agent)
  if not best then return {agent_id, 'none'} end
  local task_key = BASE .. 'task:' .. best
  local agent_fields = reserve(agent_key, agent_id, task_key, best, agent.skills,
    {pos = tostring(pos or ''), since = agent.since_text, task = task})
  return {agent_id, 'ok', with_fields(hash, agent_fields), redis.call('HGETALL', task_key)}
end

CHANGES = {}  -- published once for every agent served (_lib.lua)
free_held(100)
local results = {}
for i = 8, #ARGV do results[#results + 1] = serve(ARGV[i]) end
publish_changes()
return {results, bad, wake_next_held(wake, woken)}
