-- Give up a node's serve lease, only for its holder (store/lease.py); no _lib.lua.
-- KEYS: lease. ARGV: token. Returns 1 when released, 0 when it was not held by ARGV[1].
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
