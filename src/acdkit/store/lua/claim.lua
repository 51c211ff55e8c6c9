-- Reserve one ready agent for one queued task, atomically.
-- KEYS: agent hash, task hash. ARGV[5..6]: agent id, task id.
-- Returns 'ok', 'missing' (either is gone), 'agent_busy' (the agent is no longer ready),
-- 'task_taken' (the task is no longer queued) or 'ineligible' (the agent lost the skill level).
local agent_key, task_key = KEYS[1], KEYS[2]
local agent_id, task_id = ARGV[5], ARGV[6]
if redis.call('EXISTS', agent_key) == 0 or redis.call('EXISTS', task_key) == 0 then
  return 'missing'
end
if redis.call('HGET', agent_key, 'state') ~= 'ready' then return 'agent_busy' end
local t = redis.call('HMGET', task_key, 'state', 'skill', 'min_level')
if t[1] ~= 'queued' then return 'task_taken' end
local level = tonumber(skills_of(agent_key)[t[2]] or 0) or 0
if level < (tonumber(t[3]) or 1) then return 'ineligible' end
reserve(agent_key, agent_id, task_key, task_id)
return 'ok'
