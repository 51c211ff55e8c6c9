-- Read only: the heads of some skill queues, each task with its whole hash, as one JSON
-- document: one round trip, and one reply to parse instead of one per field.
-- KEYS: any key of the pool (declares the slot). ARGV[5..6]: how many heads per queue, from
-- which rank; ARGV[7..]: the skills.
-- Returns JSON [[task id, score, task hash], ...].
local limit, offset = tonumber(ARGV[5]), tonumber(ARGV[6])

local function as_table(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local heads = {}
for i = 7, #ARGV do
  local page = redis.call('ZRANGE', BASE .. 'q:' .. ARGV[i], offset, offset + limit - 1,
    'WITHSCORES')
  for j = 1, #page, 2 do
    heads[#heads + 1] = {page[j], page[j + 1],
      as_table(redis.call('HGETALL', BASE .. 'task:' .. page[j]))}
  end
end
if #heads == 0 then return '[]' end
return cjson.encode(heads)
