-- Shared by every acdkit script: scripts.py prepends this file to each of them.
-- ARGV[1..4] are always: key base ("acdkit:{pool}:"), audit MAXLEN, per-entity audit MAXLEN,
-- now (epoch seconds). Key names built here must agree with store/keys.py; they all carry the
-- base's hash tag, so every key a script touches lives in one cluster slot.
local BASE = ARGV[1]
local MAXLEN = ARGV[2]
local EMAXLEN = ARGV[3]
local NOW = ARGV[4]

local function in_list(value, csv)
  for item in string.gmatch(csv, '[^,]+') do
    if item == value then return true end
  end
  return false
end

-- Changes not yet published: a script that makes many (a claim for many agents) sets this to
-- {} and publishes them once, one per line, with ``publish_changes``.
local CHANGES = nil

-- Append one entry, packed as one JSON field ``e``, to the pool's stream (the audit trail
-- in order, read for the KPIs: store/kpis.py) and to the entity's own stream (its story).
-- fields: flat list {name, value, ...}; empty values are left out.
local function audit(kind, entity, event, fields)
  local packed = {ts = NOW, event = event, kind = kind, entity = entity}
  for i = 1, #fields, 2 do
    local value = fields[i + 1]
    if value and value ~= '' then packed[fields[i]] = value end
  end
  local entry = cjson.encode(packed)
  redis.call('XADD', BASE .. 'kpi', 'MAXLEN', '~', MAXLEN, '*', 'e', entry)
  -- Pages follow every change live through one subscription (docs/pages.md).
  local change = kind .. ' ' .. entity .. ' ' .. event
  if CHANGES then
    CHANGES[#CHANGES + 1] = change
  else
    redis.call('PUBLISH', BASE .. 'changes', change)
  end
  redis.call('XADD', BASE .. 'audit:' .. kind .. ':' .. entity, 'MAXLEN', '~', EMAXLEN, '*',
    'e', entry)
end

-- Publish the changes gathered in ``CHANGES`` (if any) as one message.
local function publish_changes()
  if CHANGES and #CHANGES > 0 then
    redis.call('PUBLISH', BASE .. 'changes', table.concat(CHANGES, '\n'))
  end
  CHANGES = nil
end

-- Fields joined: {a..., b...}.
local function joined(a, b)
  for i = 1, #b do a[#a + 1] = b[i] end
  return a
end

-- What a task event carries for reports (docs/kpis.md): skill, task kind, enqueue and
-- creation times, customer attempts (when any); pos is the 1-based place in its skill queue
-- (given by the caller: before it leaves, after it joins); ``read``: those fields as the
-- caller read them already (the HMGET below, in its order), else they are read here. The
-- caller's channel and number only as it joins (queue_log's ENTERQUEUE): entries stay small,
-- a busy day is 100,000.
local function task_facts(task_key, pos, joins, read)
  local t = read or redis.call('HMGET', task_key, 'skill', 'kind', 'enqueued_at',
    'created_at', 'attempts', 'channel_id', 'number')
  local attempts = t[5]
  if attempts == '0' then attempts = '' end
  local facts = {'skill', t[1], 'tkind', t[2], 'enq', t[3], 'created', t[4],
    'attempts', attempts, 'pos', pos or ''}
  if joins then
    joined(facts, {'chan', t[6], 'number', t[7]})
  end
  return facts
end

-- The 1-based place of a queued task among its skill's queued tasks: the skill queue and the
-- held line (tasks waiting for their preferred agent, below) together, by score. ``rank``:
-- its 0-based rank in the skill queue when the caller read it there already.
local function place_in_line(skill, task_id, score, rank)
  local below = '(' .. score
  rank = rank or redis.call('ZRANK', BASE .. 'q:' .. skill, task_id)
  if rank then
    return rank + 1 + redis.call('ZCOUNT', BASE .. 'qheld:' .. skill, '-inf', below)
  end
  rank = redis.call('ZRANK', BASE .. 'qheld:' .. skill, task_id)
  if rank then
    return rank + 1 + redis.call('ZCOUNT', BASE .. 'q:' .. skill, '-inf', below)
  end
  return nil
end

-- The 1-based place of a queued task in its skill's line, '' when it is not queued.
local function queue_pos(task_key, task_id)
  local t = redis.call('HMGET', task_key, 'state', 'skill', 'score')
  if t[1] ~= 'queued' then return '' end
  local place = place_in_line(t[2], task_id, t[3])
  if not place then return '' end
  return tostring(place)
end

local function skills_of(agent_key)
  local raw = redis.call('HGET', agent_key, 'skills')
  if not raw or raw == '' then return {} end
  return cjson.decode(raw)
end

-- Put a ready agent into (or take it out of) the ready set of each of its skills
-- (``skills``: the agent's skills when the caller has read them already).
local function set_ready(agent_key, agent_id, on, skills)
  for skill, _ in pairs(skills or skills_of(agent_key)) do
    if on then
      redis.call('SADD', BASE .. 'ready:' .. skill, agent_id)
    else
      redis.call('SREM', BASE .. 'ready:' .. skill, agent_id)
    end
  end
end

-- A queued task that waits for its preferred agent (until its ``preferred_until``) is held
-- out of its skill queue, so the claims of the other agents never read it: it stands in the
-- skill's held line ``qheld:<skill>`` (counts and places), in the agent's own line
-- ``held:<agent>`` (merged into that agent's claims: claim_next.lua) and in ``heldend``
-- (scored by that time: claim_next.lua moves it to its skill queue once the time is up).

-- Take a task out of its held lines (``skill``, ``preferred``: as stored, when known); returns
-- 1 when it stood in its skill's held line.
local function unhold(task_id, skill, preferred)
  redis.call('ZREM', BASE .. 'heldend', task_id)
  if preferred and preferred ~= '' then
    redis.call('ZREM', BASE .. 'held:' .. preferred, task_id)
  end
  if skill then return redis.call('ZREM', BASE .. 'qheld:' .. skill, task_id) end
  return 0
end

-- How many tasks wait, by state, skill and kind: the hash ``counts``, one field
-- ``<state>|<skill>|<kind>`` per kind of waiting task (queued: in a skill queue or a held line;
-- scheduled: in the due set), changed only as a task enters or leaves one of those indexes.
-- The wallboard and /metrics read it instead of every waiting task. Its field ``built`` says
-- it was counted from the indexes (counts.lua); a reader that misses it counts again.
local function count_waiting(state, skill, kind, by)
  redis.call('HINCRBY', BASE .. 'counts', state .. '|' .. (skill or '') .. '|' .. (kind or ''),
    by)
end

-- Remove a task from every index (its skill queue or held lines, the age index, the due set).
-- ``known`` (optional), what the caller has read already: ``skill``, ``preferred`` (its
-- preferred agent, '' for none) and ``kind``, as stored; ``queued``: its state is queued
-- (every state change re-indexes the task, so it is not in the due set).
local function unindex_task(task_key, task_id, known)
  known = known or {}
  local skill, preferred, kind = known.skill, known.preferred, known.kind
  if not skill or preferred == nil or not kind then
    local t = redis.call('HMGET', task_key, 'skill', 'preferred_agent', 'kind')
    skill, preferred, kind = skill or t[1], preferred or t[2] or '', kind or t[3]
  end
  if skill then
    local left = redis.call('ZREM', BASE .. 'q:' .. skill, task_id)
    redis.call('ZREM', BASE .. 'qage:' .. skill, task_id)
    if preferred ~= '' then left = left + unhold(task_id, skill, preferred) end
    if left > 0 then count_waiting('queued', skill, kind, -1) end
  end
  if not known.queued and redis.call('ZREM', BASE .. 'due', task_id) > 0 then
    count_waiting('scheduled', skill, kind, -1)
  end
end

-- Put a task where its state says: queued → its skill queue, or its held lines while it waits
-- for its preferred agent (and a wake-up for dispatchers either way), scheduled → the due
-- set; any other state is in no index.
local function index_task(task_key, task_id)
  local t = redis.call('HMGET', task_key, 'state', 'skill', 'score', 'enqueued_at', 'due_at',
    'preferred_agent', 'preferred_until', 'kind')
  if t[1] == 'queued' then
    redis.call('ZADD', BASE .. 'qage:' .. t[2], t[4], task_id)
    redis.call('SADD', BASE .. 'skills', t[2])
    local until_ = tonumber(t[7] or '')
    local added
    if t[6] and t[6] ~= '' and until_ and until_ > tonumber(NOW) then
      added = redis.call('ZADD', BASE .. 'qheld:' .. t[2], t[3], task_id)
      redis.call('ZADD', BASE .. 'held:' .. t[6], t[3], task_id)
      redis.call('ZADD', BASE .. 'heldend', t[7], task_id)
    else
      added = redis.call('ZADD', BASE .. 'q:' .. t[2], t[3], task_id)
    end
    if added > 0 then count_waiting('queued', t[2], t[8], 1) end
    redis.call('PUBLISH', BASE .. 'events', 'task_added ' .. task_id)
  elseif t[1] == 'scheduled' then
    if redis.call('ZADD', BASE .. 'due', t[5], task_id) > 0 then
      count_waiting('scheduled', t[2], t[8], 1)
    end
  end
end

-- ``wake`` ({task id, time, ...}, a dispatcher's wake-ups: it claims for the task then,
-- dispatch.py) and the held task whose agent's time is up next after now, unless it is
-- ``listed`` already: a dispatcher that wakes for one learns the next.
local function wake_next_held(wake, listed)
  local next_end = redis.call('ZRANGE', BASE .. 'heldend', '(' .. NOW, '+inf', 'BYSCORE',
    'LIMIT', 0, 1, 'WITHSCORES')
  if next_end[1] and not listed[next_end[1]] then
    wake[#wake + 1] = next_end[1]
    wake[#wake + 1] = next_end[2]
  end
  return wake
end

-- Send a task held in state reserved/active back to its queue with its stored score.
local function requeue_task(task_key, task_id, event, reason)
  local t = redis.call('HMGET', task_key, 'state', 'agent_id')
  redis.call('HSET', task_key, 'state', 'queued', 'agent_id', '')
  index_task(task_key, task_id)
  audit('task', task_id, event, joined({'from', t[1], 'to', 'queued', 'agent', t[2],
    'reason', reason}, task_facts(task_key, queue_pos(task_key, task_id))))
end

-- Reserve a ready agent for a queued task (both checked by the caller), with its audit.
-- ``known`` (optional), what the caller read already, so it is not read again: ``pos`` the
-- task's place in its skill queue, ``since`` the agent's state_since as stored, ``task`` the
-- task's routing record (_routing.lua ``routing_task``: skill and report facts).
-- Returns the fields written to the agent's hash ({name, value, ...}).
local function reserve(agent_key, agent_id, task_key, task_id, skills, known)
  known = known or {}
  local task = known.task
  local pos = known.pos or queue_pos(task_key, task_id)
  local was = known.since or redis.call('HGET', agent_key, 'state_since') or ''
  set_ready(agent_key, agent_id, false, skills)
  unindex_task(task_key, task_id, task and {skill = task.skill, preferred = task.preferred,
    kind = task.kind, queued = task.state == 'queued'})
  local agent_fields = {'state', 'reserved', 'task_id', task_id, 'state_since', NOW}
  redis.call('HSET', agent_key, unpack(agent_fields))
  redis.call('HSET', task_key, 'state', 'reserved', 'agent_id', agent_id)
  audit('task', task_id, 'reserve', joined({'from', 'queued', 'to', 'reserved', 'agent', agent_id},
    task_facts(task_key, pos, false, task and task.facts)))
  audit('agent', agent_id, 'reserve', {'from', 'ready', 'to', 'reserved', 'task', task_id,
    'since', was})
  return agent_fields
end

-- ``flat`` (a hash as HGETALL gives it) with ``fields`` ({name, value, ...}) set as HSET sets
-- them: what HGETALL would give after that HSET, without reading it again.
local function with_fields(flat, fields)
  local at = {}
  for i = 1, #flat, 2 do at[flat[i]] = i + 1 end
  for i = 1, #fields, 2 do
    local j = at[fields[i]]
    if j then
      flat[j] = fields[i + 1]
    else
      flat[#flat + 1] = fields[i]
      flat[#flat + 1] = fields[i + 1]
    end
  end
  return flat
end
