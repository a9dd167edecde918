// The Lua scripts of the desk routing state on Redis (desk/redis.ts). Every script starts with HEAD: the key
// prefixes and this node's id come first in ARGV (the caller passes them, from bus/keys.ts), then the
// script's own arguments as args[]. Key names are built from prefixes inside the scripts; on a Redis Cluster
// they all share one hash tag (bus/keys.ts), so they are in the slot of the routing key the caller passes as
// KEYS[1]. Liveness is the presence leases (presence/redis.ts, the `nodes` ZSET): an entry of a node whose
// lease ran out is skipped by every read and pick until that node is swept.

/** ARGV[1..14] of every script (key prefixes and this node); a script's own arguments follow, as args[]. */
const HEAD = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local NODES, KA, KAN, KL, KG, KGN, KON, KF, KQ, KNA, KNG, KDN, KVER, ME =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14]
local args = {}
for i = 15, #ARGV do args[i - 14] = ARGV[i] end
local function alive(n) local e = redis.call('ZSCORE', NODES, n) return e and tonumber(e) > now end
local function anyAlive(h)
  for _, n in ipairs(redis.call('HKEYS', h)) do if alive(n) then return true end end
  return false
end
local function version()
  local v = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', KVER) or '0')
  if v <= last then v = last + 1 end
  local s = string.format('%.0f', v)
  redis.call('SET', KVER, s)
  return s
end
-- the load of agent a when it can take one more guest of grp, else nil
local function available(a, grp)
  local s = redis.call('HMGET', KA .. a, 'group', 'cap', 'susp')
  if s[1] ~= grp or s[3] == '1' or not anyAlive(KAN .. a) then return nil end
  local load = redis.call('SCARD', KL .. a)
  if load >= tonumber(s[2]) then return nil end
  return load
end
-- keeps agent a in its group's free ZSET (score = load) exactly while it is not suspended and below capacity
local function refresh(a)
  local s = redis.call('HMGET', KA .. a, 'group', 'cap', 'susp')
  if not s[1] then return end
  local load = redis.call('SCARD', KL .. a)
  if s[3] ~= '1' and load < tonumber(s[2]) then redis.call('ZADD', KF .. s[1], load, a)
  else redis.call('ZREM', KF .. s[1], a) end
end
-- the sticky agent when available, else the first live agent of the free ZSET: least load, then least id
-- (members of one score are in byte order); agents of a dead node not yet swept are skipped
local function pick(grp, sticky)
  if sticky and sticky ~= '' and available(sticky, grp) then return sticky end
  local from = 0
  while true do
    local page = redis.call('ZRANGE', KF .. grp, from, from + 15)
    if #page == 0 then return nil end
    for _, a in ipairs(page) do if anyAlive(KAN .. a) then return a end end
    from = from + 16
  end
end
local function assign(g, a)
  redis.call('HSET', KG .. g, 'agent', a, 'last', a)
  redis.call('SADD', KL .. a, g)
  refresh(a)
  return version()
end
local function unassign(g, a)
  redis.call('HDEL', KG .. g, 'agent')
  redis.call('SREM', KL .. a, g)
  refresh(a)
end
local function guestGone(g)
  local s = redis.call('HMGET', KG .. g, 'group', 'agent')
  if s[1] then redis.call('LREM', KQ .. s[1], 0, g) end
  if s[2] then unassign(g, s[2]) end
  redis.call('DEL', KG .. g, KGN .. g)
  return s[1]
end
local function agentGone(a)
  local grp = redis.call('HGET', KA .. a, 'group')
  for _, g in ipairs(redis.call('SMEMBERS', KL .. a)) do
    if redis.call('HGET', KG .. g, 'agent') == a then redis.call('HDEL', KG .. g, 'agent') end
  end
  if grp then
    redis.call('SREM', KON .. grp, a)
    redis.call('ZREM', KF .. grp, a)
  end
  redis.call('DEL', KA .. a, KL .. a, KAN .. a)
end
-- {agent, version ('' when it was assigned before)} or {'', queue position}
local function route(g)
  local s = redis.call('HMGET', KG .. g, 'group', 'agent', 'last')
  if s[2] then return {s[2], ''} end
  local pos = redis.call('LPOS', KQ .. s[1], g)
  if pos then return {'', pos + 1} end
  local a = pick(s[1], s[3])
  if a then return {a, assign(g, a)} end
  return {'', redis.call('RPUSH', KQ .. s[1], g)}
end
`;

const bodies: Record<string, string> = {
  // agent, group, capacity, sessions
  agentUp: `
local a, grp = args[1], args[2]
if not anyAlive(KAN .. a) then agentGone(a) end
local old = redis.call('HGET', KA .. a, 'group')
if old and old ~= grp then
  redis.call('SREM', KON .. old, a)
  redis.call('ZREM', KF .. old, a)
end
redis.call('HSET', KA .. a, 'group', grp, 'cap', args[3])
redis.call('HSETNX', KA .. a, 'susp', '0')
redis.call('HINCRBY', KAN .. a, ME, tonumber(args[4]))
redis.call('SADD', KON .. grp, a)
refresh(a)
redis.call('SADD', KNA .. ME, a)
redis.call('SADD', KDN, ME)
return 1`,
  // agent
  agentDown: `
local a = args[1]
if redis.call('HINCRBY', KAN .. a, ME, -1) <= 0 then
  redis.call('HDEL', KAN .. a, ME)
  redis.call('SREM', KNA .. ME, a)
end
if not anyAlive(KAN .. a) then agentGone(a) end
return 1`,
  // agent, "1" | "0" → its group, or nil when it is not online
  suspend: `
local a = args[1]
local grp = redis.call('HGET', KA .. a, 'group')
if not grp or not anyAlive(KAN .. a) then return false end
redis.call('HSET', KA .. a, 'susp', args[2])
refresh(a)
return grp`,
  // guest, group, last agent ('' = none), sessions, "route" | "queue" → route() and the freed group
  guestUp: `
local g, grp = args[1], args[2]
local freed = ''
local cur = redis.call('HGET', KG .. g, 'group')
if cur and (cur ~= grp or not anyAlive(KGN .. g)) then freed = guestGone(g) or '' end
redis.call('HSET', KG .. g, 'group', grp)
if args[3] ~= '' then redis.call('HSETNX', KG .. g, 'last', args[3]) end
redis.call('HINCRBY', KGN .. g, ME, tonumber(args[4]))
redis.call('SADD', KNG .. ME, g)
redis.call('SADD', KDN, ME)
if args[5] == 'queue' then
  if not redis.call('HGET', KG .. g, 'agent') and not redis.call('LPOS', KQ .. grp, g) then redis.call('RPUSH', KQ .. grp, g) end
  return {'', 0, freed}
end
local r = route(g)
r[3] = freed
return r`,
  // guest → its group once it has no session left anywhere
  guestDown: `
local g = args[1]
if redis.call('HINCRBY', KGN .. g, ME, -1) <= 0 then
  redis.call('HDEL', KGN .. g, ME)
  redis.call('SREM', KNG .. ME, g)
end
if redis.call('EXISTS', KG .. g) == 1 and not anyAlive(KGN .. g) then return guestGone(g) or false end
return false`,
  // group, max → guest, agent, version, guest, agent, version, ...
  drain: `
local grp, max = args[1], tonumber(args[2])
local out = {}
while #out < max * 3 and pick(grp) do
  local g = redis.call('LPOP', KQ .. grp)
  if not g then break end
  local s = redis.call('HMGET', KG .. g, 'group', 'agent', 'last')
  if s[1] == grp and not s[2] and anyAlive(KGN .. g) then
    local a = pick(grp, s[3])
    table.insert(out, g)
    table.insert(out, a)
    table.insert(out, assign(g, a))
  end
end
return out`,
  // guest, from, to, group → version | 'unavailable' | 'conflict'
  transfer: `
local g, from, to, grp = args[1], args[2], args[3], args[4]
if to == from or redis.call('HGET', KA .. to, 'group') ~= grp or not anyAlive(KAN .. to) then return 'unavailable' end
local s = redis.call('HMGET', KG .. g, 'group', 'agent')
if s[1] then
  if s[2] and s[2] ~= from then return 'conflict' end
  if s[2] then unassign(g, from) else redis.call('LREM', KQ .. s[1], 0, g) end
  return assign(g, to)
end
return version()`,
  // guest, agent, last ('' = keep) → its group, or nil
  release: `
local g, a = args[1], args[2]
local s = redis.call('HMGET', KG .. g, 'group', 'agent')
if not s[1] or s[2] ~= a then return false end
unassign(g, a)
if args[3] ~= '' then redis.call('HSET', KG .. g, 'last', args[3]) end
redis.call('LPUSH', KQ .. s[1], g)
return s[1]`,
  // guest → {online 0/1, agent or '', position or 0}
  guest: `
local g = args[1]
local s = redis.call('HMGET', KG .. g, 'group', 'agent')
if not s[1] or not anyAlive(KGN .. g) then return {0, '', 0} end
if s[2] then return {1, s[2], 0} end
local pos = redis.call('LPOS', KQ .. s[1], g)
return {1, '', pos and pos + 1 or 0}`,
  // guests... → 1/0 each
  online: `
local out = {}
for i, g in ipairs(args) do
  out[i] = (redis.call('EXISTS', KG .. g) == 1 and anyAlive(KGN .. g)) and 1 or 0
end
return out`,
  // group → agent, suspended, load, ... of its online agents
  agents: `
local grp = args[1]
local out = {}
for _, a in ipairs(redis.call('SMEMBERS', KON .. grp)) do
  local s = redis.call('HMGET', KA .. a, 'group', 'susp')
  if s[1] == grp and anyAlive(KAN .. a) then
    table.insert(out, a)
    table.insert(out, s[2] or '0')
    table.insert(out, redis.call('SCARD', KL .. a))
  end
end
return out`,
  // group → its waiting guests that are online, first first
  queue: `
local out = {}
for _, g in ipairs(redis.call('LRANGE', KQ .. args[1], 0, -1)) do if anyAlive(KGN .. g) then table.insert(out, g) end end
return out`,
  // → 1 while this node has entries (it is listed in d:nodes), else 0 (they were swept, or Redis lost them)
  listed: `
return redis.call('SISMEMBER', KDN, ME)`,
  // node → the groups where places came free; nil when the node had no entries, or its lease holds again
  sweep: `
local dead = args[1]
if (dead ~= ME and alive(dead)) or redis.call('SREM', KDN, dead) == 0 then return false end
local freed, out = {}, {}
for _, g in ipairs(redis.call('SMEMBERS', KNG .. dead)) do
  redis.call('HDEL', KGN .. g, dead)
  if redis.call('EXISTS', KG .. g) == 1 and not anyAlive(KGN .. g) then
    local grp = guestGone(g)
    if grp then freed[grp] = true end
  end
end
for _, a in ipairs(redis.call('SMEMBERS', KNA .. dead)) do
  redis.call('HDEL', KAN .. a, dead)
  if not anyAlive(KAN .. a) then agentGone(a) end
end
redis.call('DEL', KNG .. dead, KNA .. dead)
for grp in pairs(freed) do table.insert(out, grp) end
return out`,
};

/** Each script's Lua, HEAD included, by name (defined on the client as `desk_<name>`). */
export const deskScripts: Record<string, string> = Object.fromEntries(Object.entries(bodies).map(([k, v]) => [k, HEAD + v]));
