-- The routing rule of core/routing.py (``eligible``), for the scripts that choose as they
-- claim (claim_next.lua, claim_for_task.lua): scripts.py adds this file to those two only.
-- tests/integration/test_claim_scripts.py keeps the two in step: on random pools, the
-- scripts choose what core/routing.py chooses.

-- A JSON object field, decoded; nil when it is not one (the caller sets the record aside).
local function json_object(raw)
  if not raw then return nil end
  if raw == '{}' then return {} end  -- most tasks require nothing: no decoding
  local ok, value = pcall(cjson.decode, raw)
  if not ok or type(value) ~= 'table' then return nil end
  return value
end

-- An agent as routing reads it; nil and 'missing' or 'bad' when it cannot be read. ``hash``:
-- the agent's whole hash as HGETALL gives it, when the caller has read that already.
local function routing_agent(agent_id, hash)
  local a
  if hash then
    local f = {}
    for i = 1, #hash, 2 do f[hash[i]] = hash[i + 1] end
    a = {f.state, f.skills, f.attributes, f.state_since}
  else
    a = redis.call('HMGET', BASE .. 'agent:' .. agent_id, 'state', 'skills', 'attributes',
      'state_since')
  end
  if not a[1] then return nil, 'missing' end
  local skills, attrs, since = json_object(a[2]), json_object(a[3]), tonumber(a[4])
  if not skills or not attrs or not since then return nil, 'bad' end
  return {id = agent_id, state = a[1], skills = skills, attrs = attrs, since = since,
    since_text = a[4]}
end

-- A task as routing reads it; nil and 'missing' or 'bad' when it cannot be read.
-- ``until_`` is false when the task waits for no agent in particular. ``facts``: what its
-- reserve reports (_lib.lua ``task_facts``), read in the same step so a claim reads a task once.
local function routing_task(task_id)
  local t = redis.call('HMGET', BASE .. 'task:' .. task_id, 'state', 'skill', 'min_level',
    'required', 'preferred_agent', 'preferred_until', 'kind', 'node', 'enqueued_at',
    'created_at', 'attempts')
  if not t[1] then return nil, 'missing' end
  local required, level = json_object(t[4]), tonumber(t[3])
  local until_ = false
  if t[6] ~= '' then until_ = tonumber(t[6]) end
  if not required or not level or until_ == nil or not t[2] or not t[5] then
    return nil, 'bad'
  end
  return {id = task_id, state = t[1], skill = t[2], min_level = level, required = required,
    preferred = t[5], until_ = until_, until_text = t[6], kind = t[7], node = t[8] or '',
    facts = {t[2], t[7], t[9], t[10], t[11]}}
end

-- core/routing.py ``claimable_on``: a live caller waits on one node, and only that node's
-- serve can bridge it; the claimer's node '' (or the task's) means one node.
local function claimable_on(task, node)
  return task.kind ~= 'call' or task.node == '' or node == '' or task.node == node
end

-- core/routing.py ``eligible``. A task that waits for another agent also gives the time it
-- becomes everyone's (the dispatcher wakes up then; ``until_text`` is that time as stored).
local function may_take(agent, task, now)
  if agent.state ~= 'ready' or task.state ~= 'queued' then return false end
  if (tonumber(agent.skills[task.skill]) or 0) < task.min_level then return false end
  for name, value in pairs(task.required) do
    if agent.attrs[name] ~= value then return false end
  end
  if task.preferred ~= '' and task.preferred ~= agent.id then
    if task.until_ and now >= task.until_ then return true end
    return false, task.until_
  end
  return true
end
