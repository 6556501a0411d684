import { setTimeout as delay } from 'node:timers/promises'
import t from 'tap'
import type { Bus, BusEnvelope } from '../../src/bus/bus.js'
import { decodeEnvelope, encodeEnvelope } from '../../src/bus/envelope.js'
import { createMemoryBusNetwork } from '../../src/bus/memory-bus.js'
import { busContract } from '../helpers/bus-contract.js'
import { range, waitUntil } from '../helpers/chat.js'

await busContract(t, 'memory', async () => {
  const network = createMemoryBusNetwork()
  const nodes: Bus[] = []
  return {
    node (nodeId) {
      const bus = network.node(nodeId)
      nodes.push(bus)
      return bus
    },
    close: async () => { await Promise.all(nodes.map(async (bus) => { await bus.close() })) }
  }
})

const recorder = (bus: Bus): string[] => {
  const received: string[] = []
  bus.onEnvelope((roomId, envelope) => received.push(`${roomId}:${envelope.kind === 'revoke' ? `revoke ${envelope.userId}` : envelope.text}`))
  return received
}
const message = (text: string, seq = 1): BusEnvelope => ({ kind: 'message', seq, text })

t.test('envelope: every kind decodes to what was encoded, with the sender', async (t) => {
  const envelopes: BusEnvelope[] = [
    { kind: 'message', seq: 42, text: '{"a":"\\n"}\nraw newline' },
    { kind: 'message', seq: 0, text: '' },
    { kind: 'event', userId: '7', text: 'typing\n' },
    { kind: 'event', userId: '', text: '' },
    { kind: 'revoke', userId: '9' }
  ]
  for (const envelope of envelopes) {
    const frame = encodeEnvelope('node-1', envelope)
    t.type(frame, 'string')
    t.strictSame(decodeEnvelope(frame!), { nodeId: 'node-1', envelope }, envelope.kind)
  }
  t.equal(encodeEnvelope('n', message('{"x":1}', 3)), 'm' + 'n\n3\n{"x":1}', 'the text is appended as is')
})

t.test('envelope: fields that cannot be carried are refused, garbage decodes to null', async (t) => {
  t.equal(encodeEnvelope('n', { kind: 'event', userId: 'a\nb', text: 'x' }), null, 'a userId with a newline')
  t.equal(encodeEnvelope('n', { kind: 'revoke', userId: 'a\nb' }), null)
  for (const seq of [-1, 1.5, Number.NaN, 2 ** 53]) t.equal(encodeEnvelope('n', message('x', seq)), null, `seq ${seq}`)
  for (const garbage of ['', 'garbage', 'm', 'mnode', 'm\n1\nx', 'mnode\n', 'mnode\n1', 'mnode\nx\ntext', 'mnode\n01\ntext', 'mnode\n-1\ntext', 'mnode\n1e3\ntext', 'enode\n7', 'rnode\nu\nv', '{"kind":"message"}']) {
    t.equal(decodeEnvelope(garbage), null, JSON.stringify(garbage))
  }
})

t.test('memory: node ids are checked and unique on a network, random by default', async (t) => {
  const network = createMemoryBusNetwork()
  const one = network.node()
  const two = network.node()
  t.match(one.nodeId, /^[0-9a-f-]{36}$/)
  t.not(one.nodeId, two.nodeId)
  t.throws(() => network.node('a\nb'), /newline/)
  t.throws(() => network.node(''))
  network.node('x')
  t.throws(() => network.node('x'), /already/)
  t.doesNotThrow(() => createMemoryBusNetwork().node('x'), 'another network is another namespace')
})

t.test('memory: delivery is asynchronous', async (t) => {
  const network = createMemoryBusNetwork()
  const [a, b] = [network.node('a'), network.node('b')]
  const onB = recorder(b)
  await b.subscribe('room')
  a.publish('room', message('hello'))
  t.same(onB, [], 'not during publish')
  await waitUntil(() => onB.length === 1, 2000, 'delivered')
})

t.test('memory: a disconnected node neither sends nor receives, and subscribe rejects but is kept', async (t) => {
  const network = createMemoryBusNetwork()
  const [a, b, c] = [network.node('a'), network.node('b'), network.node('c')]
  const [onA, onB, onC] = [recorder(a), recorder(b), recorder(c)]
  let resyncs = 0
  b.onResync(() => resyncs++)
  for (const bus of [a, b, c]) await bus.subscribe('room')

  a.publish('room', message('in flight'))
  b.disconnect()
  t.match(b.problem(), /disconnected/, 'problem() says so')
  a.publish('room', message('while away'))
  b.publish('room', message('from the disconnected node'))
  await t.rejects(b.subscribe('later'), /disconnected/, 'subscribe rejects')
  t.equal(b.stats().dropped, 1, 'its publish was dropped and counted')
  c.publish('room', message('marker'))
  await waitUntil(() => onA.length === 1 && onC.length === 2, 2000, 'a has the marker, c both of a\'s')
  t.same(onB, [], 'nothing reached b, not even what was on its way when it went')
  t.same(onA, ['room:marker'], 'nothing came from b')
  t.equal(resyncs, 0, 'no resync while away')

  b.reconnect()
  t.equal(b.problem(), null, 'problem() clears at once')
  await waitUntil(() => resyncs === 1, 2000, 'onResync called')
  a.publish('room', message('back'))
  a.publish('later', message('in the room subscribed while away'))
  b.publish('room', message('b is back'))
  await waitUntil(() => onB.length === 2 && onA.length === 2, 2000, 'delivery both ways')
  t.same(onB, ['room:back', 'later:in the room subscribed while away'], 'every subscription restored, the rejected one too')
  t.same(onA, ['room:marker', 'room:b is back'])
  await delay(20)
  t.equal(resyncs, 1, 'onResync called once')
  t.equal(b.stats().resyncs, 1, 'and counted')
})

t.test('memory: reconnecting a connected node, or twice in a row, calls onResync at most once', async (t) => {
  const network = createMemoryBusNetwork()
  const a = network.node('a')
  let resyncs = 0
  a.onResync(() => resyncs++)
  a.reconnect()
  a.disconnect()
  a.disconnect()
  a.reconnect()
  a.reconnect()
  await delay(20)
  t.equal(resyncs, 1)
})

t.test('memory: dropWhere loses exactly the matching envelopes, until cleared', async (t) => {
  const network = createMemoryBusNetwork()
  const [a, b] = [network.node('a'), network.node('b')]
  const onB = recorder(b)
  await b.subscribe('room')
  await b.subscribe('other')
  network.dropWhere((roomId, envelope) => roomId === 'room' && envelope.kind === 'message' && envelope.seq % 2 === 0)
  for (const seq of range(1, 6)) a.publish('room', message(`m${seq}`, seq))
  a.publish('room', { kind: 'event', userId: '2', text: 'event' })
  a.publish('other', message('other m2', 2))
  await waitUntil(() => onB.length === 5, 2000, 'the ones not dropped')
  t.same(onB, ['room:m1', 'room:m3', 'room:m5', 'room:event', 'other:other m2'])
  t.equal(a.stats().published, 8, 'the sender counts them published: they were lost on the way')
  t.equal(a.stats().dropped + b.stats().dropped, 0, 'nobody counts them dropped')
  network.dropWhere(null)
  a.publish('room', message('m8', 8))
  await waitUntil(() => onB.length === 6, 2000, 'nothing dropped any more')
})
