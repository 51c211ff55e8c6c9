-- Count the waiting tasks again from the indexes (_lib.lua ``count_waiting``): the due set
-- and each skill's queue and held line, a task whose hash is gone left out. It reads every
-- waiting task, so it runs only when the counts are not known: a pool written before they
-- were kept, or a task set aside (store/quarantine.py).
-- Returns the counts as HGETALL gives them.
local counts, key = {}, BASE .. 'counts'
local function add(state, id, skill)
  local t = redis.call('HMGET', BASE .. 'task:' .. id, 'skill', 'kind')
  if t[1] then
    local field = state .. '|' .. (skill or t[1]) .. '|' .. (t[2] or '')
    counts[field] = (counts[field] or 0) + 1
  end
end
for _, id in ipairs(redis.call('ZRANGE', BASE .. 'due', 0, -1)) do add('scheduled', id) end
for _, skill in ipairs(redis.call('SMEMBERS', BASE .. 'skills')) do
  for _, line in ipairs({'q:', 'qheld:'}) do
    for _, id in ipairs(redis.call('ZRANGE', BASE .. line .. skill, 0, -1)) do
      add('queued', id, skill)
    end
  end
end
redis.call('DEL', key)
redis.call('HSET', key, 'built', NOW)
for field, n in pairs(counts) do redis.call('HSET', key, field, n) end
return redis.call('HGETALL', key)
