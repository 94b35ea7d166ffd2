"""The Lua scripts of the Redis store: every write that must be atomic is one script.

Key names come from :class:`~corral.store.redis_keys.Keys` alone: :func:`prelude` asks it for
each kind of key with a NUL byte in place of every name part and writes the results into the
script as templates; ``fill`` puts the pool, state or id in. A VM's indexes (its pool's state
set, the ready set, the stock counts, its request's set, the destroyed set) are kept by
``unindex``/``index``, called around every change of the VM's hash, so they always agree
with it. Values are strings written by Python (see :mod:`corral.store.redis_codec`); Lua
compares and copies them but never converts a stored number.

Replies start with a word: ``ok`` (then the result), ``missing``, ``nomatch`` (not in an
expected state), ``exists`` (then the name), ``short``, ``moved`` (then the VM's pool: the
caller guessed another one to fence for), or ``fenced`` (then the pool and its counter).
"""

from __future__ import annotations

from corral.domain.models import RequestStatus
from corral.store.redis_keys import Keys

_SLOT = "\0"
ENDED_REQUESTS = tuple(s.value for s in (RequestStatus.READY, RequestStatus.FAILED, RequestStatus.DELETED))


def _lua_string(text: str) -> str:
    return '"' + "".join(f"\\{b:03d}" for b in text.encode()) + '"'


def prelude(keys: Keys) -> str:
    """The key templates of one site and the functions every script shares."""
    templates = {
        "vm": keys.vm(_SLOT), "pools": keys.pools, "state": keys.pool_state(_SLOT, _SLOT),
        "ready": keys.ready(_SLOT), "counts": keys.counts(_SLOT), "reqvms": keys.request_vms(_SLOT),
        "destroyed": keys.destroyed, "usertokens": keys.user_tokens(_SLOT), "fence": keys.fence(_SLOT),
        "seq": keys.history_seq,
        "request": keys.request(_SLOT), "requests": keys.requests(_SLOT), "ended": keys.requests_ended,
    }
    table = ", ".join(f"{name} = {_lua_string(tpl)}" for name, tpl in templates.items())
    ended = ", ".join(f"[{_lua_string(s)}] = true" for s in ENDED_REQUESTS)
    return f"local K = {{{table}}}\nlocal ENDED = {{{ended}}}\n" + _FUNCTIONS


_FUNCTIONS = r"""
local function fill(tpl, a, b)
  local parts, i = {a, b}, 0
  return (string.gsub(tpl, '%z', function() i = i + 1; return parts[i] end))
end

local function load(name)
  local flat = redis.call('HGETALL', fill(K.vm, name))
  if #flat == 0 then return nil, flat end
  local vm = {}
  for i = 1, #flat, 2 do vm[flat[i]] = flat[i + 1] end
  return vm, flat
end

local function stock(vm)
  return vm.request_id == nil or (vm.state ~= 'pending' and vm.state ~= 'ready')
end

local function unindex(name, vm)
  redis.call('ZREM', fill(K.state, vm.pool, vm.state), name)
  redis.call('ZREM', fill(K.ready, vm.pool), name)
  if vm.request_id then redis.call('ZREM', fill(K.reqvms, vm.request_id), name) end
  if vm.state == 'destroyed' then
    redis.call('ZREM', K.destroyed, name)
  elseif stock(vm) then
    local counts = fill(K.counts, vm.pool)
    if redis.call('HINCRBY', counts, vm.state, -1) <= 0 then redis.call('HDEL', counts, vm.state) end
  end
end

local function index(name, vm)
  redis.call('SADD', K.pools, vm.pool)
  redis.call('ZADD', fill(K.state, vm.pool, vm.state), vm.created_at, name)
  if vm.state == 'destroyed' then
    redis.call('ZADD', K.destroyed, vm.destroyed_at or '+inf', name)
    return
  end
  if vm.request_id then redis.call('ZADD', fill(K.reqvms, vm.request_id), vm.created_at, name) end
  if vm.state == 'ready' and vm.request_id == nil then
    redis.call('ZADD', fill(K.ready, vm.pool), vm.ready_at or '-inf', name)
  end
  if stock(vm) then redis.call('HINCRBY', fill(K.counts, vm.pool), vm.state, 1) end
end

-- Refuses a write for pool when its fence counter is above token ('none': no token at all).
local function fenced(pool, token)
  local current = redis.call('GET', fill(K.fence, pool)) or '0'
  if token == 'none' or tonumber(current) > tonumber(token) then
    return {'fenced', pool, current, token}
  end
  return nil
end

-- ARGV from position at: a count n, then n (pool, token) pairs. Returns the refusal or nil,
-- and the position after them.
local function fences(at)
  local n = tonumber(ARGV[at])
  for i = 0, n - 1 do
    local refusal = fenced(ARGV[at + 1 + 2 * i], ARGV[at + 2 + 2 * i])
    if refusal then return refusal, 0 end
  end
  return nil, at + 1 + 2 * n
end

-- Sets fields (field, value pairs) and drops others on a VM, keeping its indexes; its new hash.
local function rewrite(name, old, sets, drops)
  local key = fill(K.vm, name)
  unindex(name, old)
  if #sets > 0 then redis.call('HSET', key, unpack(sets)) end
  if #drops > 0 then redis.call('HDEL', key, unpack(drops)) end
  local vm, flat = load(name)
  index(name, vm)
  return flat
end
"""

# ARGV: fence pairs (count first), then for each VM: name, n, then n field/value strings.
ADD = r"""
local refusal, at = fences(1)
if refusal then return refusal end
local vms, seen = {}, {}
while at <= #ARGV do
  local name, n = ARGV[at], tonumber(ARGV[at + 1])
  local old = load(name)
  if seen[name] or (old and old.state ~= 'destroyed') then return {'exists', name} end
  seen[name] = true
  local fields = {}
  for i = at + 2, at + 1 + n do fields[#fields + 1] = ARGV[i] end
  vms[#vms + 1] = {name, old, fields}
  at = at + 2 + n
end
for _, entry in ipairs(vms) do
  local name, old, fields = entry[1], entry[2], entry[3]
  if old then
    unindex(name, old)
    redis.call('DEL', fill(K.vm, name))
  end
  redis.call('HSET', fill(K.vm, name), unpack(fields))
  index(name, load(name))
end
return {'ok'}
"""

# ARGV: name, '=' and the pool to fence for ('' when unfenced), its token, new state ('' to keep it), the
# number of expected states, the states, the number of set strings, field/value strings,
# then the fields to drop.
# KEYS: none, or the wake channel (a waking view): a move of state publishes the VM's pool on it.
SET = r"""
local name, token, new = ARGV[1], ARGV[3], ARGV[4]
local vm = load(name)
if vm == nil then return {'missing'} end
if ARGV[2] ~= '' then
  local pool = ARGV[2]:sub(2)
  if vm.pool ~= pool then return {'moved', vm.pool} end
  local refusal = fenced(pool, token)
  if refusal then return refusal end
end
local n = tonumber(ARGV[5])
local at = 6 + n
if new ~= '' then
  local match = false
  for i = 6, 5 + n do if ARGV[i] == vm.state then match = true end end
  if not match then return {'nomatch'} end
end
local sets, drops = {}, {}
if new ~= '' then sets = {'state', new} end
local m = tonumber(ARGV[at])
for i = at + 1, at + m do sets[#sets + 1] = ARGV[i] end
for i = at + m + 1, #ARGV do drops[#drops + 1] = ARGV[i] end
local pool = vm.pool
local out = {'ok', rewrite(name, vm, sets, drops)}
if new ~= '' and #KEYS > 0 then redis.call('PUBLISH', KEYS[1], pool) end
return out
"""

# ARGV: now, token, user (each '=' and the value, or '' for None), then (pool, count, lifetime) triples. All or nothing.
# KEYS: none, or the wake channel (a waking view): each pool a VM was taken from is published on it.
CHECKOUT = r"""
local now, token, user = ARGV[1], ARGV[2]:sub(2), ARGV[3]:sub(2)
local picks = {}
for at = 4, #ARGV, 3 do
  local pool, count = ARGV[at], tonumber(ARGV[at + 1])
  local names = redis.call('ZRANGE', fill(K.ready, pool), 0, count - 1)
  if #names < count then return {'short'} end
  picks[#picks + 1] = {names, ARGV[at + 2], pool}
end
local sets, drops = {'checkout_at', now}, {}
if ARGV[2] ~= '' then sets[#sets + 1] = 'token'; sets[#sets + 1] = token else drops[#drops + 1] = 'token' end
if ARGV[3] ~= '' then sets[#sets + 1] = 'user'; sets[#sets + 1] = user else drops[#drops + 1] = 'user' end
local out = {'ok'}
for _, pick in ipairs(picks) do
  for _, name in ipairs(pick[1]) do
    local fields = {'state', 'running', 'lifetime_s', pick[2], unpack(sets)}
    out[#out + 1] = rewrite(name, load(name), fields, drops)
  end
  if #KEYS > 0 then redis.call('PUBLISH', KEYS[1], pick[3]) end
end
return out
"""

# ARGV: '=' and the pool ('' for every pool), then the states. The hashes of the matching VMs.
LIST = r"""
local pools = {}
if ARGV[1] == '' then pools = redis.call('SMEMBERS', K.pools) else pools = {ARGV[1]:sub(2)} end
local out = {}
for _, pool in ipairs(pools) do
  for i = 2, #ARGV do
    for _, name in ipairs(redis.call('ZRANGE', fill(K.state, pool, ARGV[i]), 0, -1)) do
      local _, flat = load(name)
      out[#out + 1] = flat
    end
  end
end
return out
"""

# ARGV: the request id. The hashes of its VMs that are not destroyed.
REQUEST_VMS = r"""
local out = {}
for _, name in ipairs(redis.call('ZRANGE', fill(K.reqvms, ARGV[1]), 0, -1)) do
  local _, flat = load(name)
  out[#out + 1] = flat
end
return out
"""

# KEYS: the history sets. ARGV: older_than. Forgets destroyed VMs, old history and ended requests.
PURGE = r"""
local cut = '(' .. ARGV[1]
local names = redis.call('ZRANGE', K.destroyed, '-inf', cut, 'BYSCORE')
for _, name in ipairs(names) do
  local vm = load(name)
  if vm then unindex(name, vm) end
  redis.call('ZREM', K.destroyed, name)
  redis.call('DEL', fill(K.vm, name))
end
for _, key in ipairs(KEYS) do redis.call('ZREMRANGEBYSCORE', key, '-inf', cut) end
for _, id in ipairs(redis.call('ZRANGE', K.ended, '-inf', cut, 'BYSCORE')) do
  local status = redis.call('HGET', fill(K.request, id), 'status')
  if status then redis.call('ZREM', fill(K.requests, status), id) end
  redis.call('DEL', fill(K.request, id))
  redis.call('ZREM', K.ended, id)
end
return #names
"""

# KEYS: history sets. ARGV: fence pairs, then (key number, score, payload) triples; each
# member is a sequence number (the order of recording) and the payload.
HISTORY = r"""
local refusal, at = fences(1)
if refusal then return refusal end
for i = at, #ARGV, 3 do
  local seq = redis.call('INCR', K.seq)
  redis.call('ZADD', KEYS[tonumber(ARGV[i])], ARGV[i + 1], string.format('%016d', seq) .. ARGV[i + 2])
end
return {'ok'}
"""

# KEYS: the pool's overrides hash, the set of pools with overrides. ARGV: fence pairs, then
# the pool, the setting and its JSON value (no value: clear the setting).
OVERRIDE = r"""
local refusal, at = fences(1)
if refusal then return refusal end
local pool, setting, value = ARGV[at], ARGV[at + 1], ARGV[at + 2]
if value then
  redis.call('HSET', KEYS[1], setting, value)
  redis.call('SADD', KEYS[2], pool)
  return {'ok', 1}
end
local cleared = redis.call('HDEL', KEYS[1], setting)
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], pool) end
return {'ok', cleared}
"""

# KEYS: the token's hash, its user's set. ARGV: created_at, then field/value strings.
TOKEN_ADD = r"""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('ZADD', KEYS[2], ARGV[1], redis.call('HGET', KEYS[1], 'hash'))
return 1
"""

# KEYS: the token's hash. ARGV: when it was used.
TOKEN_TOUCH = r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'last_used_at', ARGV[1])
return 1
"""

# KEYS: the token's hash.
TOKEN_DELETE = r"""
local token = redis.call('HMGET', KEYS[1], 'hash', 'user')
if not token[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', fill(K.usertokens, token[2]), token[1])
return 1
"""

# ARGV: the id, then field/value strings (status and created_at among them).
REQUEST_ADD = r"""
local id = ARGV[1]
local key = fill(K.request, id)
if redis.call('EXISTS', key) == 1 then return 0 end
redis.call('HSET', key, unpack(ARGV, 2))
local r = redis.call('HMGET', key, 'status', 'created_at', 'updated_at')
redis.call('ZADD', fill(K.requests, r[1]), r[2], id)
if ENDED[r[1]] then redis.call('ZADD', K.ended, r[3] or r[2], id) end
return 1
"""

# ARGV: the id, the new status, now, then the expected statuses. A compare-and-set.
REQUEST_STATUS = r"""
local id, new, now = ARGV[1], ARGV[2], ARGV[3]
local key = fill(K.request, id)
local r = redis.call('HMGET', key, 'status', 'created_at')
if not r[1] then return 0 end
local match = false
for i = 4, #ARGV do if ARGV[i] == r[1] then match = true end end
if not match then return 0 end
redis.call('ZREM', fill(K.requests, r[1]), id)
redis.call('ZADD', fill(K.requests, new), r[2], id)
redis.call('HSET', key, 'status', new, 'updated_at', now)
if ENDED[new] then redis.call('ZADD', K.ended, now, id) else redis.call('ZREM', K.ended, id) end
return 1
"""

