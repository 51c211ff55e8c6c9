-- Send a reserved (or active) task back to its queue with its ORIGINAL score, and move the
-- agent that holds it to a given next state, atomically.
-- KEYS: task hash. ARGV[5..]: task id, agent next state, reason, missed ('1' counts a miss),
-- task states allowed (comma-separated).
-- Returns 'ok', 'missing' or 'conflict:<task state>'.
local task_key = KEYS[1]
local task_id, next_state, reason, missed, allowed = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
if redis.call('EXISTS', task_key) == 0 then return 'missing' end
local t = redis.call('HMGET', task_key, 'state', 'agent_id')
if not in_list(t[1], allowed) then return 'conflict:' .. t[1] end
requeue_task(task_key, task_id, 'release', reason)

local agent_id = t[2]
if not agent_id or agent_id == '' then return 'ok' end
local agent_key = BASE .. 'agent:' .. agent_id
local a = redis.call('HMGET', agent_key, 'state', 'task_id', 'state_since')
-- Only the agent that still holds this task moves; a later reservation is not undone.
if a[2] ~= task_id or (a[1] ~= 'reserved' and a[1] ~= 'on_call') then return 'ok' end
redis.call('HSET', agent_key, 'state', next_state, 'task_id', '', 'state_since', NOW)
if next_state == 'paused' then
  redis.call('HSET', agent_key, 'pause_reason', reason ~= '' and reason or 'paused')
end
if missed == '1' then redis.call('HINCRBY', agent_key, 'misses', 1) end
if next_state == 'ready' then
  set_ready(agent_key, agent_id, true)
  redis.call('PUBLISH', BASE .. 'events', 'agent_ready ' .. agent_id)
end
audit('agent', agent_id, 'release', {'from', a[1], 'to', next_state, 'task', task_id,
  'reason', reason, 'since', a[3] or ''})
return 'ok'
