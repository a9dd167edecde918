// The Lua scripts of presence on Redis (presence/redis.ts). Leases are on Redis's own clock (TIME); every
// read counts only entries of nodes whose lease holds.
import type { RedisConn } from "../bus/redis.ts";

const NOW = `local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;
// KEYS[1] = nodes ZSET; true when node ARGV-given is alive
const ALIVE = `local function alive(node) local e = redis.call('ZSCORE', KEYS[1], node) return e and tonumber(e) > now end`;

export const scripts = {
  // KEYS: nodes, slot key | ARGV: node, ttl ms → {1 when the lease was gone (written anew) else 0, the
  // node holding our id slot when another one took it else '', dead nodes...}
  heartbeat: {
    numberOfKeys: 2,
    lua: `${NOW}
local out = {redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]), ''}
local holder = redis.call('GET', KEYS[2])
if holder == false or holder == ARGV[1] then redis.call('SET', KEYS[2], ARGV[1], 'PX', tonumber(ARGV[2]) * 4)
else out[2] = holder end
for _, d in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do table.insert(out, d) end
return out`,
  },
  // KEYS: nodes, user nodes set, node users hash, role set | ARGV: node, user, role
  down: {
    numberOfKeys: 4,
    lua: `${NOW} ${ALIVE}
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[2])
for _, n in ipairs(redis.call('SMEMBERS', KEYS[2])) do if alive(n) then return 0 end end
redis.call('SREM', KEYS[4], ARGV[2])
return 1`,
  },
  // KEYS: nodes, user nodes set, node users hash, role set | ARGV: node, user, role → 1 when no other live
  // node held the user (it was offline everywhere), else 0
  up: {
    numberOfKeys: 4,
    lua: `${NOW} ${ALIVE}
local others = 0
for _, n in ipairs(redis.call('SMEMBERS', KEYS[2])) do if n ~= ARGV[1] and alive(n) then others = 1 break end end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[4], ARGV[2])
return 1 - others`,
  },
  // KEYS: nodes, then one user-nodes set per user → 1/0 per user
  // (no numberOfKeys: the caller passes the key count first)
  online: {
    lua: `${NOW} ${ALIVE}
local out = {}
for i = 2, #KEYS do
  out[i - 1] = 0
  for _, n in ipairs(redis.call('SMEMBERS', KEYS[i])) do if alive(n) then out[i - 1] = 1 break end end
end
return out`,
  },
  // KEYS: nodes, room hash | ARGV: this node (its count is added by the caller) → the other nodes' sum
  roomCount: {
    numberOfKeys: 2,
    lua: `${NOW} ${ALIVE}
local kv = redis.call('HGETALL', KEYS[2])
local sum = 0
for i = 1, #kv, 2 do if kv[i] ~= ARGV[1] and alive(kv[i]) then sum = sum + tonumber(kv[i + 1]) end end
return sum`,
  },
  // KEYS: nodes, node users hash, node rooms set | ARGV: dead node, the key prefixes of user-nodes sets,
  // role sets and room hashes (keys.ts builds them), "1" to sweep even while its lease holds (this node's
  // own entries) → the users removed, or -1 when the node's lease holds again
  sweep: {
    numberOfKeys: 3,
    lua: `${NOW} ${ALIVE}
if ARGV[5] ~= '1' and alive(ARGV[1]) then return -1 end
local kv = redis.call('HGETALL', KEYS[2])
for i = 1, #kv, 2 do
  local nodes = ARGV[2] .. kv[i]
  redis.call('SREM', nodes, ARGV[1])
  local left = false
  for _, n in ipairs(redis.call('SMEMBERS', nodes)) do if alive(n) then left = true break end end
  if not left then redis.call('SREM', ARGV[3] .. kv[i + 1], kv[i]) end
end
for _, room in ipairs(redis.call('SMEMBERS', KEYS[3])) do redis.call('HDEL', ARGV[4] .. room, ARGV[1]) end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
return #kv / 2`,
  },
};

export type Scripted = RedisConn & {
  heartbeat(nodes: string, slot: string, node: string, ttlMs: number): Promise<[number, string, ...string[]]>;
  up(nodes: string, userNodes: string, nodeUsers: string, role: string, node: string, user: string, roleName: string): Promise<number>;
  down(nodes: string, userNodes: string, nodeUsers: string, role: string, node: string, user: string, roleName: string): Promise<number>;
  online(n: number, ...keys: string[]): Promise<number[]>;
  roomCount(nodes: string, room: string, node: string): Promise<number>;
  sweep(nodes: string, nodeUsers: string, nodeRooms: string, dead: string, userNodes: string, role: string, room: string, force: string): Promise<number>;
};
