import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { createRedisPresenceStore } from '../../src/presence/redis-presence-store.js'
import type { PresenceStore } from '../../src/presence/presence-store.js'
import { presenceStoreContract } from '../helpers/presence-store-contract.js'

// The Redis store against the machine's shared Redis: each harness works under a prefix of its
// own and deletes its keys at the end (never FLUSHALL: other test files use this server).
const url = process.env.TEST_REDIS_URL
const skip = url === undefined || url === '' ? 'redis: TEST_REDIS_URL is not set' : false

/** A connection as the server makes its command connection: calls fail at once while Redis is away. */
async function serverConnection (): Promise<Redis> {
  const redis = new Redis(url!, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true })
  await redis.connect()
  return redis
}

/** Every key under `prefix`. */
async function keysUnder (redis: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, page] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    keys.push(...page)
  } while (cursor !== '0')
  return keys
}

async function deleteUnder (redis: Redis, prefix: string): Promise<void> {
  const keys = await keysUnder(redis, prefix)
  if (keys.length > 0) await redis.del(...keys)
}

/** A fresh prefix, its keys deleted at teardown, and a connection per node (as each node has its own). */
async function harness (t: Test, leaseMs: number): Promise<{ prefix: string, admin: Redis, node: (nodeId: string) => PresenceStore }> {
  const prefix = `test:presence:${process.pid}:${randomBytes(4).toString('hex')}:`
  const admin = await serverConnection()
  const connections = new Map<string, Redis>()
  t.teardown(async () => {
    await deleteUnder(admin, prefix)
    for (const redis of connections.values()) redis.disconnect()
    admin.disconnect()
  })
  const connectionOf = (nodeId: string): Redis => {
    let redis = connections.get(nodeId)
    // Queues until connected, so a node can be made without waiting; the failure cases use serverConnection.
    if (redis === undefined) connections.set(nodeId, redis = new Redis(url!, { maxRetriesPerRequest: 1 }))
    return redis
  }
  return {
    prefix,
    admin,
    node: (nodeId) => createRedisPresenceStore({ redis: connectionOf(nodeId), prefix, nodeId, leaseMs })
  }
}

/** Lets `ms` pass while the `alive` nodes touch every 50 ms, as live nodes do (a sweep needs some). */
async function livesFor (ms: number, ...alive: PresenceStore[]): Promise<void> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    for (const store of alive) await store.touch()
    await new Promise((resolve) => setTimeout(resolve, Math.min(50, Math.max(0, until - Date.now()))))
  }
}

if (skip !== false) {
  t.test('redis presence store', { skip }, async () => {})
} else {
  await presenceStoreContract(t, 'redis', async ({ leaseMs }) => {
    const prefix = `test:presence:${process.pid}:${randomBytes(4).toString('hex')}:`
    const admin = await serverConnection()
    const connections: Redis[] = []
    return {
      node (nodeId) {
        const redis = new Redis(url!, { maxRetriesPerRequest: 1 })
        connections.push(redis)
        return createRedisPresenceStore({ redis, prefix, nodeId, leaseMs })
      },
      wipe: async () => { await deleteUnder(admin, prefix) },
      async close () {
        await deleteUnder(admin, prefix)
        for (const redis of connections) redis.disconnect()
        admin.disconnect()
      }
    }
  }, { clock: 'real' })

  t.test('redis: every key is under the prefix and one hash tag, and none is left once every node let go', async (t) => {
    const { prefix, admin, node } = await harness(t, 60_000)
    const a = node('a')
    const b = node('b')
    await a.join('lobby', { userId: '101', username: 'alice' })
    await b.join('lobby', { userId: '101', username: 'alice' })
    await a.connect({ userId: '101', username: 'alice' })
    await b.join('kitchen', { userId: '102', username: 'bob' })
    const keys = await keysUnder(admin, prefix)
    t.ok(keys.length > 0)
    t.ok(keys.every((key) => key.startsWith(`${prefix}{presence}:`)), 'one slot on Redis Cluster')
    await a.leave('lobby', '101')
    await a.disconnect('101')
    await b.leave('lobby', '101')
    await b.leave('kitchen', '102')
    t.same((await keysUnder(admin, prefix)).sort(), [`${prefix}{presence}:heard`, `${prefix}{presence}:nodes`], 'only the live nodes\' leases are left')
    await a.close()
    await b.close()
    t.same(await keysUnder(admin, prefix), [], 'nothing after both closed')
  })

  t.test('redis: a swept node leaves no key behind', async (t) => {
    const { prefix, admin, node } = await harness(t, 300)
    const a = node('a')
    const b = node('b')
    await a.join('lobby', { userId: '101', username: 'alice' })
    await a.connect({ userId: '101', username: 'alice' })
    await livesFor(400, b)
    t.equal((await b.sweep()).length, 2)
    await b.close()
    t.same(await keysUnder(admin, prefix), [])
  })

  t.test('redis: a node with more claims than one sweep script takes is swept whole, each claim to one of two sweepers', async (t) => {
    const { node } = await harness(t, 1000)
    const a = node('a')
    const b = node('b')
    const d = node('d')
    const users = 2500
    await Promise.all(Array.from({ length: users }, async (_, i) => await a.join('lobby', { userId: String(1000 + i), username: `user${i}` })))
    await livesFor(1100, b, d)
    const [one, two] = await Promise.all([b.sweep(), d.sweep()])
    const all = [...one, ...two].map((change) => `${change.roomId ?? '*'} ${change.userId} ${change.username}`)
    t.equal(all.length, users, 'every claim reported')
    t.equal(new Set(all).size, users, 'none twice')
    t.ok(all.includes('lobby 1000 user0') && all.includes(`lobby ${1000 + users - 1} user${users - 1}`))
    t.same(await b.online('lobby'), [])
    t.same([...await b.sweep(), ...await d.sweep()], [])
  })

  t.test('redis: calls reject at once while Redis is away, and the next touch undoes a report that failed', async (t) => {
    const { prefix, node } = await harness(t, 60_000)
    const redis = await serverConnection()
    t.teardown(() => { redis.disconnect() })
    const a = createRedisPresenceStore({ redis, prefix, nodeId: 'a', leaseMs: 60_000 })
    const b = node('b')
    await a.join('lobby', { userId: '101', username: 'alice' })
    await a.connect({ userId: '101', username: 'alice' })
    await a.join('lobby', { userId: '102', username: 'bob' })
    const ended = once(redis, 'end')
    redis.disconnect()
    await t.rejects(a.leave('lobby', '101'), 'the leave fails: Redis still has her')
    await t.rejects(a.disconnect('101'))
    await t.rejects(a.touch())
    t.same((await b.online('lobby')).map((u) => u.userId).sort(), ['101', '102'], 'a ghost until a is back')
    await ended
    await redis.connect()
    const changes = await a.touch()
    t.same(changes.offline.map((c) => `${c.roomId ?? '*'} ${c.userId} ${c.username}`).sort(), ['* 101 alice', 'lobby 101 alice'], 'the failed reports are applied, and their news returned')
    t.same(changes.online, [])
    t.same(await b.online('lobby'), [{ userId: '102', username: 'bob' }])
    t.equal(await b.isOnline('101'), false)
    t.same(await a.touch(), { online: [], offline: [] }, 'in sync again')
  })

  t.test('redis: the lease runs on Redis\'s clock, not the node\'s', async (t) => {
    const { node } = await harness(t, 60_000)
    const realNow = Date.now
    t.teardown(() => { Date.now = realNow })
    const a = node('a')
    await a.join('lobby', { userId: '101', username: 'alice' })
    // A node whose clock is an hour off must not see (or make) everyone's lease lapsed.
    Date.now = () => realNow() + 3_600_000
    const b = node('b')
    t.same(await b.online('lobby'), [{ userId: '101', username: 'alice' }])
    t.same(await b.sweep(), [])
  })
}
