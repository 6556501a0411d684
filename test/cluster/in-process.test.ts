// Three nodes in one process over the memory bus, sharing one database and one presence store:
// the multi-node behaviour without Redis, on every backend, with faults the memory bus injects.
import t, { type Test } from 'tap'
import { createDatabase, type DatabaseHandle, type DatabaseOptions } from '../../db/create-db.js'
import { createMemoryBusNetwork } from '../../src/bus/memory-bus.js'
import { createMemoryPresence } from '../../src/presence/memory-presence-store.js'
import { createRoom, delay, range, uniqueRoomId, waitUntil } from '../helpers/chat.js'
import { eachBackend, startTestServer, type TestServer } from '../helpers/server.js'
import { connect, messageEvents, receivedAcks, type ConnectedSocket } from '../helpers/socket.js'

const FAST_FRAMES = { WS_RATE: '100000', WS_BURST: '100000' }

interface Cluster {
  readonly nodes: TestServer[]
  readonly network: ReturnType<typeof createMemoryBusNetwork>
  readonly buses: Array<ReturnType<ReturnType<typeof createMemoryBusNetwork>['node']>>
}

/** Node 0 opens the database and every node shares its handle; it is closed once every node has stopped. */
async function startCluster (t: Test, backend: Parameters<typeof startTestServer>[1], size = 3): Promise<Cluster> {
  const network = createMemoryBusNetwork()
  const presence = createMemoryPresence({ leaseMs: 6000 })
  const buses = range(0, size - 1).map((i) => network.node(`node-${i}`))
  let shared: DatabaseHandle | undefined
  const open = async (options: DatabaseOptions): Promise<DatabaseHandle> => {
    shared ??= await createDatabase(options)
    return { ...shared, close: async () => {} }
  }
  const nodes: TestServer[] = []
  for (let i = 0; i < size; i++) {
    nodes.push(await startTestServer(t, backend, { env: FAST_FRAMES, openDatabase: open, cluster: { bus: buses[i]!, presenceStore: presence.forNode(`node-${i}`) } }))
  }
  t.teardown(async () => {
    await Promise.all(nodes.map(async (node) => await node.server.close()))
    await shared?.close()
  })
  return { nodes, network, buses }
}

async function joined (t: Test, socket: ConnectedSocket, room: string, afterSeq?: number): Promise<void> {
  const reply = await socket.request(afterSeq === undefined ? { type: 'join', room } : { type: 'join', room, afterSeq })
  t.equal(reply.type, 'joined', `joined ${room}`)
}

/** Sends `count` more messages from each sender, a few at a time, waits for their acks, and returns every acked seq so far. */
async function sendFromAll (senders: ConnectedSocket[], room: string, count: number, tag: string): Promise<number[]> {
  const base = senders.map((s) => receivedAcks(s, room).length)
  for (let i = 0; i < count; i += 10) {
    for (const [n, s] of senders.entries()) {
      for (let j = i; j < Math.min(i + 10, count); j++) s.send({ type: 'message', room, body: `${tag} ${n}.${j}`, clientMsgId: `${tag}-${n}-${j}` })
    }
    await delay(2)
  }
  await waitUntil(() => senders.every((s, i) => receivedAcks(s, room).length >= base[i]! + count), 20_000, 'every ack')
  return senders.flatMap((s) => receivedAcks(s, room).map((a) => a.seq as number)).sort((a, b) => a - b)
}

/** Each receiver holds every seq in `seqs`, once, in order; and nothing else of the room. */
async function everyoneHas (t: Test, receivers: ConnectedSocket[], room: string, seqs: number[], what: string): Promise<void> {
  const deadline = 15_000
  await waitUntil(() => receivers.every((r) => messageEvents(r, room).length >= seqs.length), deadline,
    () => `${what}: got ${receivers.map((r) => messageEvents(r, room).length).join('/')} of ${seqs.length}`)
  for (const [i, r] of receivers.entries()) {
    t.same(messageEvents(r, room).map((m) => m.seq), seqs, `${what}: receiver ${i} has each seq once, in order`)
  }
}

eachBackend(t, async (t, backend) => {
  const { nodes, network, buses } = await startCluster(t, backend)
  const api = nodes[0]!.api
  const owner = await api.user('owner')
  const users = await Promise.all(range(0, 5).map(async () => await api.user('member')))

  t.test('concurrent senders on every node: every receiver on every node gets every seq once, in order', async (t) => {
    const room = uniqueRoomId('r', 'concurrent')
    await createRoom(api, owner, room)
    const receivers = await Promise.all(nodes.map(async (n, i) => await connect(n.baseUrl, users[i]!.token)))
    const senders = await Promise.all(nodes.map(async (n, i) => await connect(n.baseUrl, users[i + 3]!.token)))
    t.teardown(() => { for (const s of [...receivers, ...senders]) s.ws.terminate() })
    for (const s of [...receivers, ...senders]) await joined(t, s, room)
    const acked = await sendFromAll(senders, room, 60, 'c')
    t.same(acked, range(1, 180), 'acked seqs are gapless')
    await everyoneHas(t, receivers, room, acked, 'concurrent')
    for (const [i, s] of senders.entries()) {
      const others = messageEvents(s, room).map((m) => m.seq as number)
      const own = new Set(receivedAcks(s, room).map((a) => a.seq as number))
      t.same(others, acked.filter((seq) => !own.has(seq)), `sender ${i} got every other message once, in order, and none of its own`)
    }
  })

  t.test('frames the bus loses are filled from the database without a rejoin', async (t) => {
    const room = uniqueRoomId('r', 'lossy')
    await createRoom(api, owner, room)
    const receivers = await Promise.all(nodes.map(async (n, i) => await connect(n.baseUrl, users[i]!.token)))
    const senders = await Promise.all(nodes.map(async (n, i) => await connect(n.baseUrl, users[i + 3]!.token)))
    t.teardown(() => { for (const s of [...receivers, ...senders]) s.ws.terminate() })
    for (const s of [...receivers, ...senders]) await joined(t, s, room)
    let dropped = 0
    // Every fifth message frame is lost, the last one included: only the check against the database finds that one.
    network.dropWhere((_roomId, envelope) => envelope.kind === 'message' && envelope.seq % 5 === 0 && ++dropped > 0)
    t.teardown(() => { network.dropWhere(null) })
    const acked = await sendFromAll(senders, room, 50, 'l')
    await everyoneHas(t, receivers, room, acked, 'lossy')
    t.ok(dropped > 0, `the bus lost ${dropped} frames`)
    t.equal(receivers.filter((r) => r.received.some((f) => f.type === 'joined' && f.room === room)).length, receivers.length, 'joined once each, no rejoin')
  })

  t.test('a node whose bus was away catches up when it is back, without a rejoin', async (t) => {
    const room = uniqueRoomId('r', 'outage')
    await createRoom(api, owner, room)
    const receivers = await Promise.all(nodes.map(async (n, i) => await connect(n.baseUrl, users[i]!.token)))
    const senders = await Promise.all(nodes.map(async (n, i) => await connect(n.baseUrl, users[i + 3]!.token)))
    t.teardown(() => { for (const s of [...receivers, ...senders]) s.ws.terminate() })
    for (const s of [...receivers, ...senders]) await joined(t, s, room)
    buses[1]!.disconnect()
    const ready = await nodes[1]!.api.request('GET', '/ready')
    t.equal(ready.status, 503, 'the node cut off from the bus is not ready')
    const first = await sendFromAll(senders, room, 20, 'o1')
    t.equal(first.length, 60, 'messages are still stored and acked on every node')
    buses[1]!.reconnect()
    await everyoneHas(t, receivers, room, first, 'after the outage')
    t.equal((await nodes[1]!.api.request('GET', '/ready')).status, 200, 'ready again')
  })

  t.test('a join with afterSeq on one node while the others write: each seq once, in order', async (t) => {
    const room = uniqueRoomId('r', 'replay')
    await createRoom(api, owner, room)
    const senders = await Promise.all([nodes[0]!, nodes[1]!].map(async (n, i) => await connect(n.baseUrl, users[i + 3]!.token)))
    t.teardown(() => { for (const s of senders) s.ws.terminate() })
    for (const s of senders) await joined(t, s, room)
    const before = await sendFromAll(senders, room, 30, 'b')
    const writing = sendFromAll(senders, room, 90, 'w')
    await delay(20)
    const joiner = await connect(nodes[2]!.baseUrl, users[0]!.token)
    t.teardown(() => joiner.ws.terminate())
    await joined(t, joiner, room, 10)
    const all = await writing
    await everyoneHas(t, [joiner], room, all.filter((seq) => seq > 10), 'replay then live')
    t.ok(before.length === 60 && all.length === 240, 'everything acked')
  })

  t.test('typing, presence and a removal from a private room cross nodes', async (t) => {
    const room = uniqueRoomId('p', 'private')
    await createRoom(api, owner, room, true)
    const [alice, bob] = [users[0]!, users[1]!]
    for (const u of [alice, bob]) t.equal((await api.request('POST', `/rooms/${room}/members`, { token: owner.token, json: { userId: u.id } })).status, 204)
    const a = await connect(nodes[0]!.baseUrl, alice.token)
    const b = await connect(nodes[1]!.baseUrl, bob.token)
    const bOther = await connect(nodes[2]!.baseUrl, bob.token)
    t.teardown(() => { for (const s of [a, b, bOther]) s.ws.terminate() })
    await joined(t, a, room)
    await joined(t, b, room)
    const online = await a.next((f) => f.type === 'presence' && f.userId === bob.id)
    t.equal(online.status, 'online', 'alice on node 0 sees bob come online on node 1')
    const reply = await bOther.request({ type: 'join', room })
    t.same(reply.online.map((u: { userId: string }) => u.userId).sort(), [alice.id, bob.id].sort(), 'joined.online is the union of the nodes')
    b.send({ type: 'typing', room, typing: true })
    const typing = await a.next('typing')
    t.match(typing, { room, userId: bob.id, typing: true })
    const presence = await nodes[2]!.api.request('GET', `/rooms/${room}/presence`, { token: owner.token })
    t.same(presence.body.online.map((u: { userId: string }) => u.userId).sort(), [alice.id, bob.id].sort(), 'REST presence is the union')
    t.equal((await api.request('DELETE', `/rooms/${room}/members/${bob.id}`, { token: owner.token })).status, 204)
    for (const s of [b, bOther]) t.match(await s.next('left'), { room, reason: 'removed' }, 'removed on every node')
    a.send({ type: 'message', room, body: 'after the removal', clientMsgId: 'after' })
    await a.next('ack')
    await delay(200)
    t.same([...messageEvents(b, room), ...messageEvents(bOther, room)], [], 'the removed user receives nothing more')
    const offline = await a.next((f) => f.type === 'presence' && f.userId === bob.id)
    t.equal(offline.status, 'offline', 'bob went offline in the room once his sockets were out')
  })

  t.test('receipts cross nodes: the reader\'s other device and the other members get them, the reader gets its reply', async (t) => {
    const room = uniqueRoomId('r', 'receipts')
    await createRoom(api, owner, room)
    const [alice, bob] = [users[0]!, users[1]!]
    const b = await connect(nodes[0]!.baseUrl, bob.token)
    const bOther = await connect(nodes[1]!.baseUrl, bob.token)
    const a = await connect(nodes[2]!.baseUrl, alice.token)
    t.teardown(() => { for (const s of [a, b, bOther]) s.ws.terminate() })
    for (const s of [b, bOther, a]) await joined(t, s, room)
    for (const i of range(1, 3)) t.equal((await a.request({ type: 'message', room, body: `m${i}` })).type, 'ack')
    const reply = await b.request({ type: 'read', room, seq: 2 })
    t.match(reply, { type: 'read', room, readSeq: 2 }, 'the reader on node 0 gets its reply')
    const receipt = { type: 'receipt', room, userId: bob.id, username: bob.username, readSeq: 2 }
    t.match(await bOther.next('receipt'), receipt, 'the reader\'s other device on node 1 gets the receipt')
    t.match(await a.next('receipt'), receipt, 'the other member on node 2 gets it')
    const put = await nodes[1]!.api.request('PUT', `/rooms/${room}/read`, { token: bob.token, json: { seq: 3 } })
    t.same(put.body, { room, readSeq: 3 }, 'PUT on node 1')
    for (const [name, s] of [['node 0', b], ['node 1', bOther], ['node 2', a]] as const) {
      t.match(await s.next('receipt'), { ...receipt, readSeq: 3 }, `over REST: the socket on ${name} gets the receipt`)
    }
    t.same(b.received.filter((f) => f.type === 'receipt').map((f) => f.readSeq), [3], 'the reading socket got no receipt for its own read')
    t.same((await nodes[2]!.api.request('GET', `/rooms/${room}/receipts`, { token: owner.token })).body.receipts.map((r: { userId: string, readSeq: number }) => [r.userId, r.readSeq]),
      [[alice.id, 3], [bob.id, 3]].sort((x, y) => Number(x[0]) - Number(y[0])), 'every node lists the same positions')
  })
})
