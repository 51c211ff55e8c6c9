-- Add, change or delete one rating and update its ratee's aggregate in the same step, from
-- the old value (never a recount). ARGV[5..9]: task id, direction, rater, ratee, op ("set" or
-- "delete"); then category, score pairs for "set". Answers added | changed | deleted |
-- missing (nothing to delete) | not_yours (stored with another rater).
local TASK, DIR, RATER, RATEE, OP = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local rkey = BASE .. 'rating:' .. TASK .. ':' .. DIR
local akey = BASE .. 'ragg:' .. DIR .. ':' .. RATEE
local listed = BASE .. 'rated:' .. DIR .. ':' .. RATEE

local function count(cat, n, score)
  redis.call('HINCRBY', akey, 'n:' .. cat, n)
  redis.call('HINCRBY', akey, 'sum:' .. cat, n * score)
  redis.call('HINCRBY', akey, 'n:*', n)
  redis.call('HINCRBY', akey, 'sum:*', n * score)
end

local old = redis.call('HGETALL', rkey)
if #old > 0 then
  local fields = {}
  for i = 1, #old, 2 do fields[old[i]] = old[i + 1] end
  if fields['rater'] ~= RATER or fields['ratee'] ~= RATEE then return 'not_yours' end
  for name, value in pairs(fields) do
    if string.sub(name, 1, 2) == 's:' then count(string.sub(name, 3), -1, tonumber(value)) end
  end
  redis.call('HINCRBY', akey, 'ratings', -1)
  redis.call('DEL', rkey)
elseif OP == 'delete' then
  return 'missing'
end

local scores = {}
if OP == 'set' then
  redis.call('HSET', rkey, 'rater', RATER, 'ratee', RATEE, 'at', NOW)
  for i = 10, #ARGV, 2 do
    redis.call('HSET', rkey, 's:' .. ARGV[i], ARGV[i + 1])
    count(ARGV[i], 1, tonumber(ARGV[i + 1]))
    scores[#scores + 1] = ARGV[i] .. '=' .. ARGV[i + 1]
  end
  redis.call('HINCRBY', akey, 'ratings', 1)
  redis.call('ZADD', listed, NOW, TASK)
  redis.call('SADD', BASE .. 'ragg:' .. DIR, RATEE)
else
  redis.call('ZREM', listed, TASK)
end

local outcome = (OP == 'delete' and 'deleted') or (#old > 0 and 'changed') or 'added'
audit('task', TASK, 'rating_' .. outcome, {'direction', DIR, 'rater', RATER, 'ratee', RATEE,
  'scores', table.concat(scores, ',')})
return outcome
