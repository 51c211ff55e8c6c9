-- Read only: the 1-based place of a queued task in its skill's line (the skill queue and the
-- held line together, by score: _lib.lua ``place_in_line``), '' when it is not queued. The
-- same count the claim scripts write as the reserve's ``pos``, in one round trip.
-- KEYS: the task. ARGV[5]: its id.
return queue_pos(KEYS[1], ARGV[5])
