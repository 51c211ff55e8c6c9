-- Write agent fields under a compare-and-set on its state, keeping the ready sets right.
-- An agent that lets go of a task still reserved for it (logout, no answer, end before the
-- connection) sends that task back to its queue in the same step: a reserved task always has
-- an agent holding it.
-- KEYS: agent hash. ARGV[5..8]: agent id, expected states ('' = the agent must not exist yet,
-- '*' = any existing agent, else comma-separated), the task id the agent must hold ('' = none),
-- audit event; field/value pairs from ARGV[9].
-- Returns 'ok', 'exists', 'missing' or 'conflict:<state>'.
local agent_key = KEYS[1]
local agent_id, expected, expect_task, event = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local exists = redis.call('EXISTS', agent_key) == 1
if expected == '' then
  if exists then return 'exists' end
elseif not exists then
  return 'missing'
end
local a = redis.call('HMGET', agent_key, 'state', 'task_id', 'state_since', 'pause_reason')
local old, held, was = a[1] or '', a[2] or '', a[3] or ''
local paused_for = ''
if old == 'paused' then paused_for = a[4] or '' end
if expected ~= '' and expected ~= '*' and not in_list(old, expected) then
  return 'conflict:' .. old
end
-- The held task is part of the compare-and-set: reserved for task A and reserved again for
-- task B look the same by state alone.
if held ~= expect_task then return 'conflict:' .. old end

if old == 'ready' then set_ready(agent_key, agent_id, false) end
if #ARGV >= 9 then redis.call('HSET', agent_key, unpack(ARGV, 9)) end
redis.call('SADD', BASE .. 'agents', agent_id)
local new = redis.call('HGET', agent_key, 'state')
if new == 'ready' then
  set_ready(agent_key, agent_id, true)
  redis.call('PUBLISH', BASE .. 'events', 'agent_ready ' .. agent_id)
end

local holds = redis.call('HGET', agent_key, 'task_id')
if held ~= '' and holds ~= held then
  local task_key = BASE .. 'task:' .. held
  local t = redis.call('HMGET', task_key, 'state', 'agent_id')
  if t[1] == 'reserved' and t[2] == agent_id then
    requeue_task(task_key, held, 'release', event)
  end
end
if event ~= '' then
  -- since: when the state left began; reason: why the agent is now paused; paused_for: why
  -- it was (docs/kpis.md)
  local reason = ''
  if new == 'paused' then reason = redis.call('HGET', agent_key, 'pause_reason') or '' end
  audit('agent', agent_id, event, {'from', old, 'to', new, 'task', held, 'since', was,
    'reason', reason, 'paused_for', paused_for})
end
return 'ok'
