-- Take a node's serve lease (store/lease.py); no _lib.lua.
-- KEYS: lease, epoch counter, standbys (zset: token -> Redis ms time it stops being listed)
-- ARGV: token, ttl ms, standby listing ms, a dead holder's token ('' = none)
-- Returns the new epoch when taken, else 0 (the caller is then listed as a standby).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local took = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
-- A holder proven dead on the caller's own machine (same host and pid namespace, its
-- process gone) is replaced at once, and only if it still holds the lease.
if not took and ARGV[4] ~= '' and redis.call('GET', KEYS[1]) == ARGV[4] then
  took = redis.call('SET', KEYS[1], ARGV[1], 'XX', 'PX', ARGV[2])
end
if took then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return redis.call('INCR', KEYS[2])
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
return 0
