-- Read only: the heads of some skills' lines (the skill queue and the held line together, by
-- score: _lib.lua), each task with its whole hash, as one JSON document: one round trip, and
-- one reply to parse instead of one per field.
-- KEYS: any key of the pool (declares the slot). ARGV[5..6]: how many heads per queue, from
-- which rank; ARGV[7..]: the skills.
-- Returns JSON [[task id, score, task hash], ...].
local limit, offset = tonumber(ARGV[5]), tonumber(ARGV[6])

local function as_table(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- Ranks offset .. offset + limit - 1 of the two lines merged: {id, score text, ...}.
local function line(skill)
  local last = offset + limit - 1
  local a = redis.call('ZRANGE', BASE .. 'q:' .. skill, 0, last, 'WITHSCORES')
  local b = redis.call('ZRANGE', BASE .. 'qheld:' .. skill, 0, last, 'WITHSCORES')
  local merged, i, j = {}, 1, 1
  while (i <= #a or j <= #b) and #merged < 2 * (last + 1) do
    local take_a = j > #b or (i <= #a and (tonumber(a[i + 1]) < tonumber(b[j + 1])
      or (tonumber(a[i + 1]) == tonumber(b[j + 1]) and a[i] < b[j])))
    if take_a then
      merged[#merged + 1], merged[#merged + 2] = a[i], a[i + 1]
      i = i + 2
    else
      merged[#merged + 1], merged[#merged + 2] = b[j], b[j + 1]
      j = j + 2
    end
  end
  local page = {}
  for k = 2 * offset + 1, #merged do page[#page + 1] = merged[k] end
  return page
end

local heads = {}
for i = 7, #ARGV do
  local page = line(ARGV[i])
  for j = 1, #page, 2 do
    heads[#heads + 1] = {page[j], page[j + 1],
      as_table(redis.call('HGETALL', BASE .. 'task:' .. page[j]))}
  end
end
if #heads == 0 then return '[]' end
return cjson.encode(heads)
