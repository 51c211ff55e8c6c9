-- Renew a node's serve lease, only for its holder (store/lease.py); no _lib.lua.
-- KEYS: lease. ARGV: token, ttl ms. Returns 1 when renewed, 0 when the lease is gone or
-- another process holds it: an expired lease is never brought back by a late renew.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
