-- The dispatcher's claim for a new task: the agent ready longest among those the routing rule
-- (_routing.lua) lets take it is reserved for it, in one step.
-- KEYS: any key of the pool (declares the slot). ARGV[5]: task id; ARGV[6]: the claimer's
-- node (a live caller of another node is that node's to claim: 'none').
-- Returns {status, agent hash, task hash, bad agents, wake} as nested arrays: status 'ok'
-- (the hashes as HGETALL gives them after the claim), 'none' (no ready agent may take it
-- now), 'taken' (not queued), 'missing' or 'bad' (the task cannot be read). bad agents: ids
-- of agents that cannot be read. wake: {task id, time, ...} after 'ok' or 'none': the task
-- itself when it waits for its preferred agent until that time, and the held task whose
-- agent's time is up next (so a dispatcher that wakes for one learns the next).
local task_id, now, node = ARGV[5], tonumber(NOW), ARGV[6]
local task, why = routing_task(task_id)
if not task then return {why, {}, {}, {}, {}} end
if task.state ~= 'queued' then return {'taken', {}, {}, {}, {}} end
if not claimable_on(task, node) then return {'none', {}, {}, {}, {}} end

local bad, best = {}, nil
for _, agent_id in ipairs(redis.call('SMEMBERS', BASE .. 'ready:' .. task.skill)) do
  local agent, problem = routing_agent(agent_id)
  if agent then
    if may_take(agent, task, now) and (not best or agent.since < best.since
        or (agent.since == best.since and agent.id < best.id)) then
      best = agent
    end
  elseif problem == 'bad' then
    bad[#bad + 1] = agent_id
  end
end
if not best then
  local wake = {}
  if task.preferred ~= '' and task.until_ and task.until_ > now then
    wake = {task_id, task.until_text}
  end
  return {'none', {}, {}, bad, wake_next_held(wake, {[task_id] = true})}
end
local agent_key, task_key = BASE .. 'agent:' .. best.id, BASE .. 'task:' .. task_id
reserve(agent_key, best.id, task_key, task_id, best.skills,
  {since = best.since_text, task = task})
return {'ok', redis.call('HGETALL', agent_key), redis.call('HGETALL', task_key), bad,
  wake_next_held({}, {})}
