-- Replay an ended callback: the check (failed or expired) and the move back to its queue in
-- one step, so a callback that came alive meanwhile (replayed by someone else, then taken by
-- an agent) is never pulled back (docs/dial-back.md).
-- KEYS: task hash, the number's pending-callback set. ARGV[5..]: task id, was-state audit
-- fields (outcome, attempts, created_at); field/value pairs from ARGV[9].
-- Returns 'ok', 'missing' or 'conflict:<state>'.
local task_key, pending = KEYS[1], KEYS[2]
local task_id = ARGV[5]
if redis.call('EXISTS', task_key) == 0 then return 'missing' end
local t = redis.call('HMGET', task_key, 'state', 'agent_id')
local old, holder = t[1], t[2] or ''
if old ~= 'failed' and old ~= 'expired' then return 'conflict:' .. old end
unindex_task(task_key, task_id)
redis.call('HSET', task_key, unpack(ARGV, 9))
redis.call('ZADD', BASE .. 'tasks', redis.call('HGET', task_key, 'created_at'), task_id)
index_task(task_key, task_id)
redis.call('SADD', pending, task_id)
audit('task', task_id, 'replayed', {'was', old, 'outcome', ARGV[6], 'attempts', ARGV[7],
  'created_at', ARGV[8]})
-- An agent that still holds the task that failed under it is let go (as task_state.lua).
if holder ~= '' then
  local agent_key = BASE .. 'agent:' .. holder
  local a = redis.call('HMGET', agent_key, 'state', 'task_id')
  if a[2] == task_id and (a[1] == 'reserved' or a[1] == 'on_call') then
    redis.call('HSET', agent_key, 'state', 'wrap_up', 'task_id', '', 'state_since', NOW)
    audit('agent', holder, 'end', {'from', a[1], 'to', 'wrap_up', 'task', task_id,
      'reason', 'replayed'})
  end
end
return 'ok'
