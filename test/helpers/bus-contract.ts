import { setTimeout as delay } from 'node:timers/promises'
import type { Test } from 'tap'
import type { Bus, BusEnvelope } from '../../src/bus/bus.js'
import { range, waitUntil } from './chat.js'

/**
 * The Bus contract (src/bus/bus.ts), run against any implementation.
 *
 * A factory builds one isolated network (a Redis factory uses a fresh channel prefix each call):
 * the contract calls it once per subtest, or twice when it checks that networks are apart, and
 * closes it at the end of that subtest. `node(id)` makes a node of that network with that id; the
 * contract calls it once per id and network.
 */
export interface BusHarness {
  node (nodeId: string): Bus
  /** Closes every node it made (some may be closed already) and releases what it opened. */
  close (): Promise<void>
}

export type BusFactory = () => Promise<BusHarness>

interface Received { readonly roomId: string, readonly envelope: BusEnvelope }

/** How long anything the contract waits for may take: far more than any bus needs, so no test hangs. */
const WAIT_MS = 10_000

/** What a node receives, in order. */
function recorder (bus: Bus): Received[] {
  const received: Received[] = []
  bus.onEnvelope((roomId, envelope) => received.push({ roomId, envelope }))
  return received
}

async function receives (list: readonly Received[], count: number, what: string): Promise<void> {
  await waitUntil(() => list.length >= count, WAIT_MS, () => `${what}: ${list.length} of ${count} received`)
}

/** A frame text as a node would encode it: JSON, already escaped. */
const frame = (body: unknown): string => JSON.stringify(body)

/** Texts that a careless encoding would change: non-ASCII, escapes, our own separator, empty, big. */
const AWKWARD_TEXTS = [
  frame({ type: 'message', body: 'héllo wörld 🎉 — "quoted" \\ back\u2028slash' }),
  '',
  'not JSON: line one\nline two\r\n\ttabbed\n',
  'm-a\n5\nlooks like a header',
  frame({ type: 'message', body: 'x'.repeat(100_000) }),
  'nul \u0000 and a lone \n at the end\n'
]

/** The envelopes of every kind built on those texts. */
function everyKind (tag: string): BusEnvelope[] {
  return AWKWARD_TEXTS.flatMap((text, i): BusEnvelope[] => [
    { kind: 'message', seq: i === 0 ? 0 : i === 1 ? Number.MAX_SAFE_INTEGER : i + 1, text: `${text}${tag}` },
    { kind: 'event', userId: String(100 + i), text: `${tag}${text}` },
    { kind: 'revoke', userId: `${tag}-${100 + i}` }
  ])
}

const textOf = (envelope: BusEnvelope): string => envelope.kind === 'revoke' ? `revoke ${envelope.userId}` : envelope.text
const texts = (list: readonly Received[], roomId?: string): string[] =>
  list.filter((r) => roomId === undefined || r.roomId === roomId).map((r) => textOf(r.envelope))

const message = (text: string, seq = 1): BusEnvelope => ({ kind: 'message', seq, text })

/** Registers the contract's subtests on `t` and resolves once they have run. `name` labels them ('memory', 'redis classic'). */
export async function busContract (t: Test, name: string, factory: BusFactory): Promise<void> {
  /** A fresh network for the subtest; its nodes come back once ready (problem() null). */
  const network = async (t: Test): Promise<(nodeId: string) => Promise<Bus>> => {
    const harness = await factory()
    t.teardown(async () => { await harness.close() })
    return async (nodeId) => {
      const bus = harness.node(nodeId)
      await waitUntil(() => bus.problem() === null, WAIT_MS, () => `node ${nodeId} ready (problem: ${bus.problem() ?? 'none'})`)
      return bus
    }
  }

  const check = async (title: string, fn: (t: Test) => Promise<void>): Promise<void> => {
    await t.test(`${name}: ${title}`, { timeout: 60_000 }, fn)
  }

  await check('every other subscribed node receives envelopes of all three kinds, byte for byte, in order', async (t) => {
    const node = await network(t)
    const [a, b, c] = [await node('a'), await node('b'), await node('c')]
    const [onA, onB, onC] = [recorder(a), recorder(b), recorder(c)]
    for (const bus of [a, b, c]) {
      await bus.subscribe('r1')
      await bus.subscribe('r2')
    }
    const fromA = everyKind('a')
    fromA.forEach((envelope, i) => a.publish(i % 2 === 0 ? 'r1' : 'r2', envelope))
    const expected = fromA.map((envelope, i) => ({ roomId: i % 2 === 0 ? 'r1' : 'r2', envelope }))
    await receives(onB, expected.length, 'b from a')
    await receives(onC, expected.length, 'c from a')
    t.strictSame(onB, expected, 'b has exactly what a sent, in a\'s order, with its room')
    t.strictSame(onC, expected, 'and so has c')

    const fromB = everyKind('b')
    for (const envelope of fromB) b.publish('r1', envelope)
    await receives(onA, fromB.length, 'a from b')
    await receives(onC, expected.length + fromB.length, 'c from b')
    t.strictSame(onA, fromB.map((envelope) => ({ roomId: 'r1', envelope })), 'a has exactly what b sent')
    t.strictSame(onC.slice(expected.length), fromB.map((envelope) => ({ roomId: 'r1', envelope })), 'and so has c')
  })

  await check('each publisher\'s envelopes arrive in the order it published them (500 each, at once)', async (t) => {
    const node = await network(t)
    const [a, b, c] = [await node('a'), await node('b'), await node('c')]
    const onC = recorder(c)
    await c.subscribe('room')
    for (const i of range(1, 500)) {
      a.publish('room', message(frame({ from: 'a', i }), i))
      b.publish('room', i % 2 === 0 ? message(frame({ from: 'b', i }), i) : { kind: 'event', userId: '7', text: frame({ from: 'b', i }) })
    }
    await receives(onC, 1000, 'c from a and b')
    const order = (from: string): number[] => onC.map((r) => JSON.parse(textOf(r.envelope)) as { from: string, i: number }).filter((body) => body.from === from).map((body) => body.i)
    t.same(order('a'), range(1, 500), 'a\'s 500 in order')
    t.same(order('b'), range(1, 500), 'b\'s 500 in order')
    const seqsFromA = onC.flatMap((r) => r.envelope.kind === 'message' && r.envelope.text.includes('"from":"a"') ? [r.envelope.seq] : [])
    t.same(seqsFromA, range(1, 500), 'with their seqs')
  })

  await check('a node never receives its own envelopes', async (t) => {
    const node = await network(t)
    const [a, b] = [await node('a'), await node('b')]
    const [onA, onB] = [recorder(a), recorder(b)]
    await a.subscribe('room')
    await b.subscribe('room')
    a.publish('room', message('own 1', 1))
    a.publish('room', { kind: 'event', userId: '1', text: 'own event' })
    a.publish('room', { kind: 'revoke', userId: '1' })
    await receives(onB, 3, 'b from a')
    // b publishes only once it has a's three: the bus has handled them, so their echoes to a
    // would come before b's marker.
    b.publish('room', message('marker', 1))
    await receives(onA, 1, 'a from b')
    await delay(50)
    t.same(texts(onA), ['marker'], 'a got b\'s marker and none of its own three')
    t.equal(a.stats().received, 1, 'and counted only that one')
  })

  await check('a node receives nothing of a room it is not subscribed to, and nothing more once unsubscribed', async (t) => {
    const node = await network(t)
    const [a, b, c] = [await node('a'), await node('b'), await node('c')]
    const [onB, onC] = [recorder(b), recorder(c)]
    for (const room of ['r1', 'r3']) await b.subscribe(room)
    for (const room of ['r1', 'r2', 'r3']) await c.subscribe(room)
    b.unsubscribe('never-subscribed')
    a.publish('r2', message('x in r2'))
    a.publish('r1', message('y in r1'))
    await receives(onB, 1, 'b from a')
    await receives(onC, 2, 'c from a')
    t.same(onB.map((r) => `${r.roomId}:${textOf(r.envelope)}`), ['r1:y in r1'], 'b had nothing of r2, which a published first')

    b.unsubscribe('r1')
    a.publish('r1', message('after unsubscribe'))
    a.publish('r3', message('marker'))
    await receives(onB, 2, 'b\'s marker')
    await receives(onC, 4, 'c from a')
    t.same(texts(onB), ['y in r1', 'marker'], 'b had nothing of r1 after unsubscribe')
    t.same(texts(onC, 'r1'), ['y in r1', 'after unsubscribe'], 'while c, still subscribed, had it')
  })

  await check('nothing is delivered after unsubscribe, even what was already on its way', async (t) => {
    const node = await network(t)
    const [a, b] = [await node('a'), await node('b')]
    const onB: Received[] = []
    b.onEnvelope((roomId, envelope) => {
      onB.push({ roomId, envelope })
      // On the first of a burst, while the rest is on its way (in the same socket read, over Redis).
      if (roomId === 'room') b.unsubscribe('room')
    })
    await b.subscribe('room')
    await b.subscribe('barrier')
    for (const i of range(1, 200)) a.publish('room', message(`burst ${i}`, i))
    a.publish('barrier', message('marker'))
    await receives(onB, 2, 'the first of the burst and the marker')
    await delay(50)
    t.same(texts(onB), ['burst 1', 'marker'], 'only the envelope that came before the unsubscribe')
  })

  await check('subscribe resolves only once the subscription is in effect', async (t) => {
    const node = await network(t)
    const [a, b] = [await node('a'), await node('b')]
    const onB = recorder(b)
    // Twenty times, so that a subscribe resolving early has twenty chances to lose the race.
    for (const i of range(1, 20)) {
      await b.subscribe(`fresh-${i}`)
      a.publish(`fresh-${i}`, message(`in fresh-${i}`, i))
    }
    await receives(onB, 20, 'b from a')
    t.same(onB.map((r) => r.roomId), range(1, 20).map((i) => `fresh-${i}`), 'every publish right after the subscribe arrived')
  })

  await check('subscriptions are not counted: subscribing twice, then unsubscribing once, ends it', async (t) => {
    const node = await network(t)
    const [a, b] = [await node('a'), await node('b')]
    const onB = recorder(b)
    await b.subscribe('room')
    await Promise.all([b.subscribe('room'), b.subscribe('room')])
    await b.subscribe('barrier')
    a.publish('room', message('before'))
    a.publish('barrier', message('first marker'))
    await receives(onB, 2, 'b from a')
    b.unsubscribe('room')
    a.publish('room', message('after'))
    a.publish('barrier', message('second marker'))
    await receives(onB, 3, 'b\'s second marker')
    t.same(texts(onB), ['before', 'first marker', 'second marker'], 'received once while subscribed, not at all after one unsubscribe')
  })

  await check('networks with different prefixes see nothing of each other', async (t) => {
    const one = await network(t)
    const two = await network(t)
    const [a, b] = [await one('a'), await one('b')]
    const [c, d] = [await two('c'), await two('d')]
    const [onA, onB, onC, onD] = [recorder(a), recorder(b), recorder(c), recorder(d)]
    for (const bus of [a, b, c, d]) await bus.subscribe('shared')
    for (const i of range(1, 3)) a.publish('shared', message(`one ${i}`, i))
    for (const i of range(1, 2)) c.publish('shared', message(`two ${i}`, i))
    await receives(onB, 3, 'b from a')
    await receives(onD, 2, 'd from c')
    await delay(200)
    t.same(texts(onB), ['one 1', 'one 2', 'one 3'], 'b had a\'s and nothing of the other network')
    t.same(texts(onD), ['two 1', 'two 2'], 'd had c\'s and nothing of the other network')
    t.same([onA.length, onC.length], [0, 0], 'nor did the publishers')
  })

  await check('close() stops delivery; publishing and closing again after it do not throw', async (t) => {
    const node = await network(t)
    const [a, b, c] = [await node('a'), await node('b'), await node('c')]
    const [onB, onC] = [recorder(b), recorder(c)]
    for (const bus of [b, c]) await bus.subscribe('room')
    await b.close()
    a.publish('room', message('after close'))
    await receives(onC, 1, 'c from a')
    await delay(50)
    t.same(onB, [], 'the closed node received nothing')
    t.not(b.problem(), null, 'a closed bus reports a problem')
    const dropped = b.stats().dropped
    t.doesNotThrow(() => b.publish('room', message('from the closed node')))
    t.equal(b.stats().dropped, dropped + 1, 'its publish is dropped and counted')
    await t.rejects(b.subscribe('room'), 'subscribing a closed bus rejects')
    await b.close()
    await delay(50)
    t.same(texts(onC), ['after close'], 'nothing came from the closed node')
  })

  await check('stats count what was published and received', async (t) => {
    const node = await network(t)
    const [a, b] = [await node('a'), await node('b')]
    const onB = recorder(b)
    let resyncs = 0
    for (const bus of [a, b]) bus.onResync(() => resyncs++)
    await b.subscribe('room')
    for (const i of range(1, 5)) a.publish('room', message(`m${i}`, i))
    a.publish('nobody-listens', message('n1'))
    a.publish('nobody-listens', { kind: 'revoke', userId: '5' })
    await receives(onB, 5, 'b from a')
    await waitUntil(() => a.stats().published === 7, WAIT_MS, () => `a published 7 (stats: ${JSON.stringify(a.stats())})`)
    t.strictSame(a.stats(), { published: 7, received: 0, dropped: 0, probeFailures: 0, resyncs: 0 }, 'a: 7 published, a room without subscribers included')
    t.strictSame(b.stats(), { published: 0, received: 5, dropped: 0, probeFailures: 0, resyncs: 0 }, 'b: 5 received')
    t.equal(resyncs, 0, 'no onResync while nothing went wrong')
  })
}
