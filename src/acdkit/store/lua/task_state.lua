-- Write task fields under a compare-and-set on its state, keeping queues and due set right.
-- KEYS: task hash. ARGV[5..8]: task id, expected states ('' = the task must not exist yet,
-- '*' = any existing task, else comma-separated), expected agent ('*' = no check, else the
-- agent_id the task must carry, '' for none), audit event; field/value pairs from ARGV[9].
-- A task that goes back to the queue or the due set (a retry later) frees the agent still
-- holding it (to wrap_up) in the same step, so no agent can hold a task that is waiting for
-- another one.
-- Returns 'ok', 'exists', 'missing' or 'conflict:<state>'.
local task_key = KEYS[1]
local task_id, expected, expect_agent, event = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local exists = redis.call('EXISTS', task_key) == 1
local old, holder, pos = '', '', ''
if expected == '' then
  if exists then return 'exists' end
else
  if not exists then return 'missing' end
  local t = redis.call('HMGET', task_key, 'state', 'agent_id')
  old, holder = t[1], t[2] or ''
  if expected ~= '*' and not in_list(old, expected) then return 'conflict:' .. old end
  if expect_agent ~= '*' and holder ~= expect_agent then return 'conflict:' .. old end
  pos = queue_pos(task_key, task_id)
  unindex_task(task_key, task_id)
end
if #ARGV >= 9 then redis.call('HSET', task_key, unpack(ARGV, 9)) end
redis.call('ZADD', BASE .. 'tasks', redis.call('HGET', task_key, 'created_at'), task_id)
index_task(task_key, task_id)
local t = redis.call('HMGET', task_key, 'state', 'agent_id', 'outcome')
local who = t[2]
if not who or who == '' then who = holder end
if old == '' then pos = queue_pos(task_key, task_id) end
audit('task', task_id, event, joined({'from', old, 'to', t[1], 'agent', who, 'outcome', t[3]},
  task_facts(task_key, pos, old == '')))
-- (also from failed/expired: an agent may still hold the task that failed under it)
if holder ~= '' and (t[1] == 'queued' or t[1] == 'scheduled') then
  local agent_key = BASE .. 'agent:' .. holder
  local a = redis.call('HMGET', agent_key, 'state', 'task_id', 'state_since')
  if a[2] == task_id and (a[1] == 'reserved' or a[1] == 'on_call') then
    redis.call('HSET', agent_key, 'state', 'wrap_up', 'task_id', '', 'state_since', NOW)
    audit('agent', holder, 'end', {'from', a[1], 'to', 'wrap_up', 'task', task_id,
      'reason', event, 'since', a[3] or ''})
  end
end
return 'ok'
