import type { Redis } from 'ioredis'
import type { Log } from '../logger.js'
import type { OnlineUser, PresenceChange, PresenceStore, TouchChanges } from './presence-store.js'

export interface RedisPresenceStoreOptions {
  /**
   * The connection to run the store's scripts on (it defines them on it). Each method is one
   * command on it, so this node's calls apply in call order; made with `enableOfflineQueue:
   * false`, calls reject at once while Redis is away.
   */
  readonly redis: Redis
  /** Put before every key (REDIS_PREFIX). */
  readonly prefix: string
  /** This node's id, unique in the cluster. */
  readonly nodeId: string
  readonly leaseMs: number
  /** Told when this node's claims had to be put back (its lease ran out, or Redis lost them). */
  readonly log?: Log
}

/** How many claims of dead nodes one sweep script removes before it lets other commands run. */
const SWEEP_BATCH = 1000
/** How many sweep scripts one `sweep()` runs at most; what is left waits for the next sweep. */
const SWEEP_ROUNDS = 100

/**
 * Helpers every script starts with. Keys, all under `base` (the prefix and one hash tag, so on
 * Redis Cluster they share a slot and undeclared keys stay legal):
 * - `nodes`: sorted set of node ids scored by lease expiry (ms, Redis's clock).
 * - `node:<id>`: hash, the node's claims, `<scope>\n<userId>` → username.
 * - `holders:<scope>\n<userId>`: set of the ids of the nodes holding that claim.
 * - `scope:<scope>`: hash userId → username of the users some node holds there.
 * - `heard`: hash, `last`: when a node last renewed its lease; `since`: when renewals resumed
 *   after a silence of half a lease or more (Redis, or the way to it, was away from everyone).
 * A node id is in a claim's holders exactly when the claim is in its hash, and a user is in the
 * scope hash exactly when the holders set exists; empty sets and hashes vanish by themselves.
 * Claims of a node whose lease ran out do not count, and whichever script meets them first
 * removes them (`prune`), so each one is found orphaned by one script only.
 */
const PRELUDE = `
local nodes = KEYS[1]
local base = ARGV[1]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local liveness = {}
local function live (node)
  local known = liveness[node]
  if known == nil then
    local score = redis.call('ZSCORE', nodes, node)
    known = score ~= false and tonumber(score) > now
    liveness[node] = known
  end
  return known
end
local function nodeKey (node) return base .. 'node:' .. node end
local function scopeKey (scope) return base .. 'scope:' .. scope end
local function holdersKey (claim) return base .. 'holders:' .. claim end
local function split (claim) return string.match(claim, '^(.*)\\n([^\\n]*)$') end
local function heldLive (claim)
  for _, node in ipairs(redis.call('SMEMBERS', holdersKey(claim))) do
    if live(node) then return true end
  end
  return false
end
local function prune (claim)
  local key = holdersKey(claim)
  for _, node in ipairs(redis.call('SMEMBERS', key)) do
    if not live(node) then
      redis.call('SREM', key, node)
      redis.call('HDEL', nodeKey(node), claim)
    end
  end
  return redis.call('SCARD', key)
end
local function remove (node, claim)
  local username = redis.call('HGET', nodeKey(node), claim)
  if username == false then return false end
  redis.call('HDEL', nodeKey(node), claim)
  redis.call('SREM', holdersKey(claim), node)
  if prune(claim) > 0 then return false end
  local scope, user = split(claim)
  redis.call('HDEL', scopeKey(scope), user)
  return username
end
local function add (node, claim, username)
  local held = redis.call('HEXISTS', nodeKey(node), claim) == 1
  local holding = prune(claim)
  local scope, user = split(claim)
  redis.call('HSET', nodeKey(node), claim, username)
  redis.call('SADD', holdersKey(claim), node)
  redis.call('HSET', scopeKey(scope), user, username)
  return not held and holding == 0
end
local heard = base .. 'heard'
local function renew (node, leaseMs)
  local last = tonumber(redis.call('HGET', heard, 'last'))
  if last == nil or now - last > leaseMs / 2 then redis.call('HSET', heard, 'since', now) end
  redis.call('HSET', heard, 'last', now)
  local score = redis.call('ZSCORE', nodes, node)
  redis.call('ZADD', nodes, now + leaseMs, node)
  liveness[node] = true
  if score == false or tonumber(score) <= now then return 1 end
  return 0
end
`

/** The scripts, by command name: each is one atomic round trip. ARGV[1] is always the key base. */
const SCRIPTS = {
  // ARGV: base, node, leaseMs, claim, username → {lapsed, came online}
  chatPresenceClaim: `
local lapsed = renew(ARGV[2], tonumber(ARGV[3]))
return { lapsed, add(ARGV[2], ARGV[4], ARGV[5]) and 1 or 0 }`,
  // ARGV: base, node, leaseMs, claim → {lapsed, went offline}
  chatPresenceUnclaim: `
local lapsed = renew(ARGV[2], tonumber(ARGV[3]))
return { lapsed, remove(ARGV[2], ARGV[4]) and 1 or 0 }`,
  // ARGV: base, node, leaseMs → lapsed
  chatPresenceTouch: `
return renew(ARGV[2], tonumber(ARGV[3]))`,
  // ARGV: base, node, leaseMs, then claim, username pairs: the node's claims as they must be.
  // → {{claim, username...} added and news, {claim, username...} removed and gone}
  chatPresenceSync: `
local node = ARGV[2]
renew(node, tonumber(ARGV[3]))
local wanted = {}
for i = 4, #ARGV, 2 do wanted[ARGV[i]] = true end
local held = redis.call('HGETALL', nodeKey(node))
local have = {}
local offline = {}
for i = 1, #held, 2 do
  local claim = held[i]
  have[claim] = true
  if not wanted[claim] then
    local username = remove(node, claim)
    if username then offline[#offline + 1] = claim; offline[#offline + 1] = username end
  end
end
local online = {}
for i = 4, #ARGV, 2 do
  local claim = ARGV[i]
  if not have[claim] and add(node, claim, ARGV[i + 1]) then
    online[#online + 1] = claim; online[#online + 1] = ARGV[i + 1]
  end
end
return { online, offline }`,
  // ARGV: base, leaseMs, budget → {{claim, username...} gone, more left}
  // Each claim is removed as it is handled, so a node swept by several callers at once is split
  // between them; the node leaves the set only once its hash is empty. Nobody is swept while no
  // node renews, nor for a lease after that: leases that ran out together were Redis's outage.
  chatPresenceSweep: `
local leaseMs = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local gone = {}
local times = redis.call('HMGET', heard, 'last', 'since')
local last, since = tonumber(times[1]), tonumber(times[2])
if last == nil or now - last > leaseMs / 2 or now - since < leaseMs then return { gone, 0 } end
for _, node in ipairs(redis.call('ZRANGEBYSCORE', nodes, '-inf', now)) do
  local key = nodeKey(node)
  local cursor = '0'
  repeat
    if budget <= 0 then return { gone, 1 } end
    local page = redis.call('HSCAN', key, cursor, 'COUNT', budget)
    cursor = page[1]
    local fields = page[2]
    for i = 1, #fields, 2 do
      local username = remove(node, fields[i])
      if username then gone[#gone + 1] = fields[i]; gone[#gone + 1] = username end
      budget = budget - 1
    end
  until cursor == '0'
  redis.call('ZREM', nodes, node)
end
return { gone, 0 }`,
  // ARGV: base, node → {claim, username...} gone
  chatPresenceClose: `
local node = ARGV[2]
redis.call('ZREM', nodes, node)
liveness[node] = false
local held = redis.call('HGETALL', nodeKey(node))
local gone = {}
for i = 1, #held, 2 do
  local username = remove(node, held[i])
  if username then gone[#gone + 1] = held[i]; gone[#gone + 1] = username end
end
if redis.call('ZCARD', nodes) == 0 then redis.call('DEL', heard) end
return gone`,
  // ARGV: base, scope → {userId, username...}
  chatPresenceOnline: `
local scope = ARGV[2]
local users = redis.call('HGETALL', scopeKey(scope))
if redis.call('ZCOUNT', nodes, '-inf', now) == 0 then return users end
local out = {}
for i = 1, #users, 2 do
  if heldLive(scope .. '\\n' .. users[i]) then out[#out + 1] = users[i]; out[#out + 1] = users[i + 1] end
end
return out`,
  // ARGV: base, claim → held by a live node
  chatPresenceHeld: `
return heldLive(ARGV[2]) and 1 or 0`
} as const

type ScriptName = keyof typeof SCRIPTS
type Run = (name: ScriptName, ...args: Array<string | number>) => Promise<unknown>

/** Defines the scripts on the connection (once per connection) and returns a way to run them. */
function scriptsOn (redis: Redis): Run {
  const commands = redis as unknown as Record<string, ((...args: Array<string | number>) => Promise<unknown>) | undefined>
  for (const [name, body] of Object.entries(SCRIPTS)) {
    // ioredis sends EVAL on a connection's first use, EVALSHA after: no NOSCRIPT retry reorders calls.
    if (typeof commands[name] !== 'function') redis.defineCommand(name, { numberOfKeys: 1, lua: PRELUDE + body })
  }
  return async (name, ...args) => await commands[name]!.call(redis, ...args)
}

/** The scope of a user's presence on the server; room ids cannot be empty, so it cannot clash. */
const SERVER = ''

const claimOf = (scope: string, userId: string): string => `${scope}\n${userId}`

/** `[claim, username, ...]` as changes. */
function changes (flat: unknown): PresenceChange[] {
  const list = flat as string[]
  const out: PresenceChange[] = []
  for (let i = 0; i + 1 < list.length; i += 2) {
    const claim = list[i]!
    const cut = claim.lastIndexOf('\n')
    const scope = claim.slice(0, cut)
    out.push({ roomId: scope === SERVER ? null : scope, userId: claim.slice(cut + 1), username: list[i + 1]! })
  }
  return out
}

const NOTHING: TouchChanges = { online: [], offline: [] }

/**
 * Presence shared by every node through Redis, leases on Redis's clock. The store keeps a copy of
 * this node's claims: when Redis may have lost some (the lease lapsed, Redis restarted empty, a
 * report failed and may or may not have been applied), the next touch makes Redis's copy match.
 */
export function createRedisPresenceStore (options: RedisPresenceStoreOptions): PresenceStore {
  const { nodeId, leaseMs, log } = options
  const run = scriptsOn(options.redis)
  const base = `${options.prefix}{presence}:`
  const nodesKey = `${base}nodes`
  const mine = new Map<string, string>()
  let resync = false

  const report = async (name: 'chatPresenceClaim' | 'chatPresenceUnclaim', ...args: string[]): Promise<boolean> => {
    try {
      const [lapsed, changed] = await run(name, nodesKey, base, nodeId, leaseMs, ...args) as [number, number]
      if (lapsed === 1) resync = true
      return changed === 1
    } catch (error) {
      // Sent or not, applied or not: only a full sync knows again.
      resync = true
      throw error
    }
  }
  const claim = async (scope: string, user: OnlineUser): Promise<boolean> => {
    const key = claimOf(scope, user.userId)
    mine.set(key, user.username)
    return await report('chatPresenceClaim', key, user.username)
  }
  const unclaim = async (scope: string, userId: string): Promise<boolean> => {
    const key = claimOf(scope, userId)
    mine.delete(key)
    return await report('chatPresenceUnclaim', key)
  }

  return {
    leaseMs,
    join: async (roomId, user) => await claim(roomId, user),
    leave: async (roomId, userId) => await unclaim(roomId, userId),
    async online (roomId) {
      const flat = await run('chatPresenceOnline', nodesKey, base, roomId) as string[]
      const users: OnlineUser[] = []
      for (let i = 0; i + 1 < flat.length; i += 2) users.push({ userId: flat[i]!, username: flat[i + 1]! })
      return users
    },
    connect: async (user) => await claim(SERVER, user),
    disconnect: async (userId) => await unclaim(SERVER, userId),
    isOnline: async (userId) => await run('chatPresenceHeld', nodesKey, base, claimOf(SERVER, userId)) === 1,
    async touch () {
      const lapsed = await run('chatPresenceTouch', nodesKey, base, nodeId, leaseMs) === 1
      if (!lapsed && !resync) return NOTHING
      resync = false
      // The snapshot is taken as the sync is sent: calls made since the touch went out are in it
      // and already applied, calls made after it follow it.
      const claims: string[] = []
      for (const [key, username] of mine) claims.push(key, username)
      let reply: [unknown, unknown]
      try {
        reply = await run('chatPresenceSync', nodesKey, base, nodeId, leaseMs, ...claims) as [unknown, unknown]
      } catch (error) {
        resync = true
        throw error
      }
      const result = { online: changes(reply[0]), offline: changes(reply[1]) }
      log?.info({ nodeId, lapsed, claims: mine.size, online: result.online.length, offline: result.offline.length }, 'presence claims put back in Redis')
      return result
    },
    async sweep () {
      const gone: PresenceChange[] = []
      for (let round = 0; round < SWEEP_ROUNDS; round++) {
        let reply: [unknown, number]
        try {
          reply = await run('chatPresenceSweep', nodesKey, base, leaseMs, SWEEP_BATCH) as [unknown, number]
        } catch (error) {
          // What earlier rounds removed is removed for good: it must still be announced.
          if (gone.length > 0) return gone
          throw error
        }
        gone.push(...changes(reply[0]))
        if (reply[1] !== 1) break
      }
      return gone
    },
    async close () {
      mine.clear()
      return changes(await run('chatPresenceClose', nodesKey, base, nodeId))
    }
  }
}
