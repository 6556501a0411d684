import { randomBytes } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import type { Bus, BusEnvelope } from '../../src/bus/bus.js'
import { createRedisBus, type RedisBusOptions } from '../../src/bus/redis-bus.js'
import type { Log } from '../../src/logger.js'
import { busContract } from '../helpers/bus-contract.js'
import { waitUntil } from '../helpers/chat.js'
import { proxyUrl } from '../helpers/tcp-proxy.js'

// The Redis bus against a real Redis (TEST_REDIS_URL), in both pub/sub modes. Every network gets a
// channel prefix of its own, so runs and other test files sharing the Redis never meet; pub/sub
// leaves no keys behind, and every connection is closed by the test that opened it.
const redisUrl = process.env.TEST_REDIS_URL ?? ''
const skip = redisUrl === '' ? 'redis: TEST_REDIS_URL is not set' : false
const MODES = [{ mode: 'classic', sharded: false }, { mode: 'sharded', sharded: true }] as const

const uniquePrefix = (): string => `test:${process.pid}:${randomBytes(4).toString('hex')}:`

interface LogEntry { readonly level: 'error' | 'warn' | 'info' | 'debug', readonly message: string, readonly args: readonly unknown[] }

/** A Log that keeps every call; `message` is the call's last string argument. */
function recordingLog (): { log: Log, entries: LogEntry[], at: (level: LogEntry['level']) => LogEntry[] } {
  const entries: LogEntry[] = []
  const record = (level: LogEntry['level']) => (...args: unknown[]): void => {
    entries.push({ level, message: String(args.findLast((arg) => typeof arg === 'string') ?? ''), args })
  }
  return { log: { error: record('error'), warn: record('warn'), info: record('info'), debug: record('debug') }, entries, at: (level) => entries.filter((e) => e.level === level) }
}
const silent = recordingLog().log

/** A bus closed at the end of the test. */
function bus (t: Test, options: Omit<RedisBusOptions, 'log'> & { log?: Log }): Bus {
  const made = createRedisBus({ log: silent, ...options })
  t.teardown(async () => { await made.close() })
  return made
}

async function ready (...buses: Bus[]): Promise<void> {
  await waitUntil(() => buses.every((b) => b.problem() === null), 10_000, () => `ready: ${buses.map((b) => b.problem()).join(', ')}`)
}

/** What a node receives, as `room:text`. */
function recorder (b: Bus): string[] {
  const received: string[] = []
  b.onEnvelope((roomId, envelope) => received.push(`${roomId}:${envelope.kind === 'revoke' ? `revoke ${envelope.userId}` : envelope.text}`))
  return received
}
const message = (text: string, seq = 1): BusEnvelope => ({ kind: 'message', seq, text })

/** A connection of the test's own, for what no bus does: killing clients, publishing garbage. */
function admin (t: Test): Redis {
  const redis = new Redis(redisUrl)
  t.teardown(() => { redis.disconnect() })
  return redis
}

/** The id Redis gives the connection named `name` (buses name theirs `<prefix>bus:<nodeId>:pub|sub`). */
async function clientId (redis: Redis, name: string): Promise<string> {
  const list = String(await redis.call('CLIENT', 'LIST'))
  const line = list.split('\n').find((l) => l.includes(` name=${name} `))
  const id = line?.match(/^id=(\d+) /)?.[1]
  if (id === undefined) throw new Error(`no client named ${name}`)
  return id
}

for (const { mode, sharded } of MODES) {
  t.test(`redis ${mode}: the Bus contract`, { skip }, async (t) => {
    await busContract(t, `redis ${mode}`, async () => {
      const prefix = uniquePrefix()
      const nodes: Bus[] = []
      return {
        node (nodeId) {
          const made = createRedisBus({ url: redisUrl, prefix, sharded, nodeId, log: silent })
          nodes.push(made)
          return made
        },
        close: async () => { await Promise.all(nodes.map(async (b) => { await b.close() })) }
      }
    })
  })

  t.test(`redis ${mode}: a killed subscriber connection is restored on the same subscriptions, then onResync once`, { skip, timeout: 60_000 }, async (t) => {
    const prefix = uniquePrefix()
    const logged = recordingLog()
    const a = bus(t, { url: redisUrl, prefix, sharded, nodeId: 'a' })
    const b = bus(t, { url: redisUrl, prefix, sharded, nodeId: 'b', log: logged.log })
    await ready(a, b)
    const [onA, onB] = [recorder(a), recorder(b)]
    let resyncs = 0
    b.onResync(() => resyncs++)
    await a.subscribe('room')
    await b.subscribe('room')
    a.publish('room', message('before'))
    await waitUntil(() => onB.length === 1, 5000, 'b from a before')

    const redis = admin(t)
    // TYPE pubsub and the id of b's subscriber: other files' connections on this Redis are spared.
    const killed = await redis.call('CLIENT', 'KILL', 'ID', await clientId(redis, `${prefix}bus:b:sub`), 'TYPE', 'pubsub')
    t.equal(killed, 1, 'b\'s subscriber connection killed')
    await waitUntil(() => resyncs === 1, 10_000, 'onResync after the reconnect')
    t.equal(b.problem(), null, 'nothing wrong once resubscribed')
    a.publish('room', message('after'))
    b.publish('room', message('from b'))
    await waitUntil(() => onB.length === 2 && onA.length === 1, 5000, 'delivery both ways')
    t.same(onB, ['room:before', 'room:after'], 'b receives again without subscribing again')
    t.same(onA, ['room:from b'])
    await delay(300)
    t.equal(resyncs, 1, 'onResync called once')
    t.equal(b.stats().resyncs, 1)
    t.same(logged.at('warn').map((e) => e.message), ['redis bus: lost Redis; envelopes are lost until it is back'], 'one warn')
    t.same(logged.at('info').map((e) => e.message), ['redis bus: Redis is back'], 'one info')
  })

  t.test(`redis ${mode}: while Redis is unreachable nothing throws, problem() says so, one warn; after, it all comes back`, { skip, timeout: 60_000 }, async (t) => {
    const prefix = uniquePrefix()
    const { proxy, url } = await proxyUrl(redisUrl, 6379)
    t.teardown(async () => { await proxy.close() })
    const logged = recordingLog()
    const a = bus(t, { url: redisUrl, prefix, sharded, nodeId: 'a' })
    // A short probe, to show it adds nothing to the log of an outage.
    const b = bus(t, { url, prefix, sharded, nodeId: 'b', log: logged.log, probeEveryMs: 100, probeTimeoutMs: 500 })
    await ready(a, b)
    const [onA, onB] = [recorder(a), recorder(b)]
    let resyncs = 0
    b.onResync(() => resyncs++)
    await a.subscribe('room')
    await b.subscribe('room')

    proxy.cut()
    await waitUntil(() => b.problem() !== null, 5000, 'b sees the outage')
    t.match(b.problem(), /not connected/)
    t.doesNotThrow(() => { for (let i = 0; i < 3; i++) b.publish('room', message(`lost ${i}`)) }, 'publish does not throw')
    await waitUntil(() => b.stats().dropped >= 3, 5000, 'dropped counted')
    await t.rejects(b.subscribe('joined-while-down'), /not connected/, 'subscribe rejects while down')
    a.publish('room', message('while b is away'))
    await delay(1500)
    t.equal(logged.at('warn').length, 1, 'one warn for the whole outage, however many reconnect attempts')
    t.match(logged.at('warn')[0]?.message, /lost Redis/)
    t.same(logged.at('info'), [], 'no info yet')

    proxy.restore()
    await waitUntil(() => b.problem() === null, 10_000, () => `b recovers (problem: ${b.problem()})`)
    await waitUntil(() => resyncs === 1, 5000, 'onResync after the outage')
    a.publish('room', message('after'))
    a.publish('joined-while-down', message('in the room subscribed while down'))
    b.publish('room', message('b is back'))
    await waitUntil(() => onB.length === 2 && onA.length === 1, 5000, 'delivery both ways')
    t.same(onB, ['room:after', 'joined-while-down:in the room subscribed while down'], 'restored, the rejected subscription too; what was sent meanwhile is lost')
    t.same(onA, ['room:b is back'], 'b\'s dropped publishes were never sent')
    await delay(300)
    t.equal(resyncs, 1, 'onResync called once')
    t.equal(logged.at('warn').length, 1, 'still one warn')
    t.same(logged.at('info').map((e) => e.message), ['redis bus: Redis is back'], 'one info')
    t.same(logged.at('error'), [])
    t.equal(b.stats().probeFailures, 0, 'the outage is not mistaken for a dead subscriber')
  })

  t.test(`redis ${mode}: a silently dead subscriber is caught by the probe and rebuilt`, { skip, timeout: 60_000 }, async (t) => {
    const prefix = uniquePrefix()
    const { proxy, url } = await proxyUrl(redisUrl, 6379)
    t.teardown(async () => { await proxy.close() })
    const logged = recordingLog()
    const a = bus(t, { url: redisUrl, prefix, sharded, nodeId: 'a' })
    const b = bus(t, { url, prefix, sharded, nodeId: 'b', log: logged.log, probeEveryMs: 200, probeTimeoutMs: 300 })
    await ready(a, b)
    const onB = recorder(b)
    let resyncs = 0
    b.onResync(() => resyncs++)
    await b.subscribe('room')
    a.publish('room', message('before'))
    await waitUntil(() => onB.length === 1, 5000, 'b from a before')

    t.equal(proxy.stallSubscribers(), 1, 'b\'s subscriber connection stalled (open, silent)')
    a.publish('room', message('into the void'))
    await waitUntil(() => b.problem() !== null, 5000, 'the probe notices')
    t.match(b.problem(), /probe not received/)
    t.ok(b.stats().probeFailures >= 1, 'counted')
    await waitUntil(() => resyncs === 1, 5000, 'onResync once the new subscriber is subscribed')
    await waitUntil(() => b.problem() === null, 5000, 'the next probe clears it')
    a.publish('room', message('after'))
    await waitUntil(() => onB.length === 2, 5000, 'delivery resumes')
    t.same(onB, ['room:before', 'room:after'])
    t.same(logged.at('warn').map((e) => e.message), ['redis bus: own probe not received within 300 ms; subscriber rebuilt'], 'one warn, and no talk of Redis being lost')
    t.same(logged.at('info').map((e) => e.message), ['redis bus: the probe is answered again'])
    t.equal(b.stats().resyncs, 1)
  })

  t.test(`redis ${mode}: a publisher whose replies stop is caught by the probe and reconnected`, { skip, timeout: 60_000 }, async (t) => {
    const prefix = uniquePrefix()
    const { proxy, url } = await proxyUrl(redisUrl, 6379)
    t.teardown(async () => { await proxy.close() })
    const logged = recordingLog()
    const a = bus(t, { url: redisUrl, prefix, sharded, nodeId: 'a' })
    const b = bus(t, { url, prefix, sharded, nodeId: 'b', log: logged.log, probeEveryMs: 200, probeTimeoutMs: 300 })
    await ready(a, b)
    const onA = recorder(a)
    await a.subscribe('room')

    t.equal(proxy.stallOthers(), 1, 'b\'s publisher connection stalled')
    for (let i = 0; i < 3; i++) b.publish('room', message(`unanswered ${i}`))
    await waitUntil(() => b.problem() !== null, 5000, 'the probe notices')
    t.match(b.problem(), /did not answer/)
    await waitUntil(() => b.stats().dropped === 3, 5000, 'the unanswered publishes fail with their connection')
    await waitUntil(() => b.problem() === null, 5000, 'a probe through the new publisher clears it')
    b.publish('room', message('after'))
    await waitUntil(() => onA.includes('room:after'), 5000, 'delivery resumes')
    await waitUntil(() => b.stats().published === 1, 5000, 'counted published once answered')
    t.same(logged.at('warn').map((e) => e.message), ['redis bus: Redis did not answer a probe within 300 ms; publisher reconnected'])
    t.equal(b.stats().resyncs, 0, 'the subscriber was never lost')
  })
}

t.test('redis: a bus made while Redis is unreachable reports it, and works once it is reachable', { skip, timeout: 60_000 }, async (t) => {
  const prefix = uniquePrefix()
  const { proxy, url } = await proxyUrl(redisUrl, 6379)
  t.teardown(async () => { await proxy.close() })
  proxy.cut()
  const logged = recordingLog()
  const a = bus(t, { url: redisUrl, prefix, sharded: false, nodeId: 'a' })
  const b = bus(t, { url, prefix, sharded: false, nodeId: 'b', log: logged.log })
  let resyncs = 0
  b.onResync(() => resyncs++)
  t.not(b.problem(), null)
  await t.rejects(b.subscribe('room'), /not connected/, 'subscribe rejects once the first attempt fails')
  await delay(500)
  t.equal(logged.at('warn').length, 1, 'one warn')
  proxy.restore()
  await ready(a, b)
  await waitUntil(() => resyncs === 1, 5000, 'onResync: the rejected subscribe may have missed something')
  const onB = recorder(b)
  a.publish('room', message('hello'))
  await waitUntil(() => onB.length === 1, 5000, 'the kept subscription works')
  t.same(logged.at('info').map((e) => e.message), ['redis bus: Redis is back'])
})

t.test('redis: subscribe right after creation waits for the first connection', { skip, timeout: 60_000 }, async (t) => {
  const prefix = uniquePrefix()
  const a = bus(t, { url: redisUrl, prefix, sharded: false, nodeId: 'a' })
  const b = bus(t, { url: redisUrl, prefix, sharded: false, nodeId: 'b' })
  let resyncs = 0
  b.onResync(() => resyncs++)
  const onB = recorder(b)
  await b.subscribe('room')
  await ready(a)
  a.publish('room', message('hello'))
  await waitUntil(() => onB.length === 1, 5000, 'in effect once resolved')
  t.equal(resyncs, 0, 'no onResync for the first connection')
})

t.test('redis: what cannot be decoded is counted as dropped and harms nothing', { skip, timeout: 60_000 }, async (t) => {
  const prefix = uniquePrefix()
  const logged = recordingLog()
  const a = bus(t, { url: redisUrl, prefix, sharded: false, nodeId: 'a' })
  const b = bus(t, { url: redisUrl, prefix, sharded: false, nodeId: 'b', log: logged.log })
  await ready(a, b)
  const onB = recorder(b)
  await b.subscribe('room')
  const redis = admin(t)
  for (const garbage of ['garbage', '', 'mx\nnot a seq\ntext', '{"kind":"message"}']) await redis.publish(`${prefix}room:room`, garbage)
  a.publish('room', message('fine'))
  await waitUntil(() => onB.length === 1, 5000, 'the good one')
  t.same(onB, ['room:fine'])
  t.equal(b.stats().dropped, 4, 'four dropped')
  t.same(logged.entries, [], 'not logged')
})

t.test('redis: an envelope handler that throws is logged, and delivery goes on', { skip, timeout: 60_000 }, async (t) => {
  const prefix = uniquePrefix()
  const logged = recordingLog()
  const a = bus(t, { url: redisUrl, prefix, sharded: false, nodeId: 'a' })
  const b = bus(t, { url: redisUrl, prefix, sharded: false, nodeId: 'b', log: logged.log })
  await ready(a, b)
  const onB: string[] = []
  b.onEnvelope((_roomId, envelope) => {
    if (envelope.kind === 'message' && envelope.seq === 1) throw new Error('handler bug')
    onB.push(envelope.kind)
  })
  await b.subscribe('room')
  a.publish('room', message('throws', 1))
  a.publish('room', message('fine', 2))
  await waitUntil(() => onB.length === 1, 5000, 'the next one')
  t.equal(logged.at('error').length, 1)
  t.equal(b.problem(), null)
})

t.test('redis: close() returns within about a second even when Redis does not answer QUIT', { skip, timeout: 60_000 }, async (t) => {
  const { proxy, url } = await proxyUrl(redisUrl, 6379)
  t.teardown(async () => { await proxy.close() })
  const b = bus(t, { url, prefix: uniquePrefix(), sharded: false, probeEveryMs: 60_000 })
  await ready(b)
  t.equal(proxy.stallSubscribers() + proxy.stallOthers(), 2, 'both connections stalled')
  const started = Date.now()
  await b.close()
  t.ok(Date.now() - started < 2500, `closed in ${Date.now() - started} ms`)
  t.match(b.problem(), /closed/)
  t.doesNotThrow(() => b.publish('room', message('after close')))
})

t.test('redis: node ids with a newline are refused', { skip }, async (t) => {
  t.throws(() => createRedisBus({ url: redisUrl, prefix: uniquePrefix(), sharded: false, nodeId: 'a\nb', log: silent }), /newline/)
})
