-- Read only: an agent and the heads of its skill queues, each task with its whole hash, as
-- one JSON document: one round trip, and one reply to parse instead of one per field.
-- KEYS: any key of the pool (declares the slot). ARGV[5..7]: agent id ('' = none), how many
-- heads per queue, from which rank; ARGV[8..]: skills (none = the agent's skills).
-- Returns JSON [agent hash or {}, [[task id, score, task hash], ...]]; no heads for an agent
-- that is not ready.
local agent_id, limit, offset = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])

local function as_table(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local agent = {}
if agent_id ~= '' then agent = as_table(redis.call('HGETALL', BASE .. 'agent:' .. agent_id)) end
if agent_id ~= '' and agent.state ~= 'ready' then return cjson.encode({agent, {}}) end
local skills = {}
if #ARGV >= 8 then
  for i = 8, #ARGV do skills[#skills + 1] = ARGV[i] end
elseif agent.skills and agent.skills ~= '' then
  -- A malformed skills field must not fail the script: the caller sees the agent hash,
  -- cannot decode it either, and sets it aside (store/quarantine.py).
  local ok, decoded = pcall(cjson.decode, agent.skills)
  if not ok or type(decoded) ~= 'table' then return cjson.encode({agent, {}}) end
  for skill, _ in pairs(decoded) do skills[#skills + 1] = tostring(skill) end
end
local heads = {}
for _, skill in ipairs(skills) do
  local page = redis.call('ZRANGE', BASE .. 'q:' .. skill, offset, offset + limit - 1,
    'WITHSCORES')
  for i = 1, #page, 2 do
    heads[#heads + 1] = {page[i], page[i + 1],
      as_table(redis.call('HGETALL', BASE .. 'task:' .. page[i]))}
  end
end
return cjson.encode({agent, heads})
