-- Read only: the hashes of the ready agents having a skill, as one JSON array (one reply to
-- parse instead of one per field: an idle center has many ready agents).
-- KEYS: the skill's ready set. Returns JSON [agent hash, ...].
local agents = {}
for _, agent_id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local flat = redis.call('HGETALL', BASE .. 'agent:' .. agent_id)
  if #flat > 0 then
    local t = {}
    for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
    agents[#agents + 1] = t
  end
end
if #agents == 0 then return '[]' end
return cjson.encode(agents)
