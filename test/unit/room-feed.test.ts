import t, { type Test } from 'tap'
import { createMemoryBusNetwork } from '../../src/bus/memory-bus.js'
import { createRoomFeed, type FeedFrame, type FeedSource, type RoomFeed, type RoomFeedDeps } from '../../src/fanout/room-feed.js'
import type { Socket } from '../../src/fanout/socket-state.js'
import { delay, waitUntil } from '../helpers/chat.js'
import { createFakeUws, type FakeSocket } from '../helpers/fake-uws.js'

const silent = { error () {}, warn () {}, info () {}, debug () {} }

/** A room's committed messages, as the database would hold them: seq n is `m<n>`. */
function createStore () {
  const rooms = new Map<string, number>()
  let failing = false
  const reads: Array<{ roomId: string, afterSeq: number, upTo: number }> = []
  const source: FeedSource = {
    async between (roomId, afterSeq, upTo) {
      if (failing) throw new Error('database down')
      reads.push({ roomId, afterSeq, upTo })
      const frames: FeedFrame[] = []
      for (let seq = afterSeq + 1; seq <= Math.min(upTo, rooms.get(roomId) ?? 0); seq++) frames.push({ seq, text: text(seq) })
      return frames
    },
    async lastSeqs (roomIds) {
      if (failing) throw new Error('database down')
      return new Map(roomIds.filter((id) => rooms.has(id)).map((id) => [id, rooms.get(id) ?? 0]))
    },
    published: async () => {}
  }
  return {
    source,
    reads,
    /** Commits the room's next message and returns its frame. */
    commit (roomId: string): FeedFrame {
      const seq = (rooms.get(roomId) ?? 0) + 1
      rooms.set(roomId, seq)
      return { seq, text: text(seq) }
    },
    fail (yes: boolean) { failing = yes }
  }
}

const text = (seq: number): string => `m${seq}`
const seqsOf = (socket: FakeSocket): number[] => socket.received.filter((m) => m.startsWith('m')).map((m) => Number(m.slice(1)))

interface Node {
  readonly feed: RoomFeed
  readonly uws: ReturnType<typeof createFakeUws>
  readonly resumed: Socket[]
  readonly revoked: string[]
}

function startNode (t: Test, network: ReturnType<typeof createMemoryBusNetwork>, store: ReturnType<typeof createStore>, overrides: Partial<RoomFeedDeps> = {}): Node & { bus: ReturnType<ReturnType<typeof createMemoryBusNetwork>['node']> } {
  const uws = createFakeUws()
  const bus = network.node()
  const resumed: Socket[] = []
  const revoked: string[] = []
  const feed = createRoomFeed({
    uws: uws.app,
    bus,
    source: store.source,
    revoked: (roomId, userId) => revoked.push(`${roomId}/${userId}`),
    resume: (ws) => { resumed.push(ws); ws.getUserData().open = false },
    log: silent,
    checkEveryMs: null,
    gapGraceMs: 20,
    ...overrides
  })
  // The feed's timers are unref'd (they must not hold a stopping server); the test holds the loop itself.
  const alive = setInterval(() => {}, 1000)
  t.teardown(async () => { clearInterval(alive); feed.close(); await bus.close() })
  return { feed, uws, bus, resumed, revoked }
}

/** Joins a fresh fake socket to the room the way membership does, with nothing to replay. */
async function joinLive (node: Node, roomId: string, lastSeq: number, userId?: string): Promise<FakeSocket> {
  const socket = node.uws.socket(userId)
  const buffer = node.feed.openBuffer(roomId, socket.ws)
  await node.feed.listening(roomId)
  await node.feed.caughtUp(roomId, lastSeq)
  for (const frame of buffer.frames) if (frame.seq > lastSeq) socket.received.push(frame.text)
  node.feed.subscribe(buffer)
  return socket
}

t.test('local messages reach the room in seq order, not the sender, and joining sockets through their buffer', async (t) => {
  const store = createStore()
  const node = startNode(t, createMemoryBusNetwork(), store)
  const alice = await joinLive(node, 'r', 0)
  const bob = await joinLive(node, 'r', 0)
  const carol = node.uws.socket()
  const buffer = node.feed.openBuffer('r', carol.ws)
  node.feed.publish('r', store.commit('r'), alice.ws)
  node.feed.publish('r', store.commit('r'), bob.ws)
  t.same(seqsOf(alice), [2], 'the sender does not get its own message')
  t.same(seqsOf(bob), [1])
  t.same(buffer.frames.map((f) => f.seq), [1, 2], 'a joining socket collects both')
  t.equal(buffer.from, 0)
  node.feed.closeBuffer(buffer)
  t.equal(node.feed.delivered('r'), 2)
  t.same(store.reads, [], 'nothing was read from the database')
})

t.test('messages cross nodes in order; each node gets each seq once', async (t) => {
  const store = createStore()
  const network = createMemoryBusNetwork()
  const a = startNode(t, network, store)
  const b = startNode(t, network, store)
  const onA = await joinLive(a, 'r', 0)
  const onB = await joinLive(b, 'r', 0)
  for (let i = 0; i < 100; i++) (i % 2 === 0 ? a : b).feed.publish('r', store.commit('r'), null)
  await waitUntil(() => seqsOf(onA).length === 100 && seqsOf(onB).length === 100, 2000, 'all delivered')
  const all = Array.from({ length: 100 }, (_, i) => i + 1)
  t.same(seqsOf(onA), all)
  t.same(seqsOf(onB), all)
})

t.test('a seq that jumps is held until the bus brings the missing one, without a database read', async (t) => {
  const store = createStore()
  const network = createMemoryBusNetwork()
  const a = startNode(t, network, store)
  const b = startNode(t, network, store, { gapGraceMs: 1000 })
  await joinLive(a, 'r', 0)
  const onB = await joinLive(b, 'r', 0)
  const first = store.commit('r')
  const second = store.commit('r')
  // b's own message overtakes a's on the bus.
  b.feed.publish('r', second, null)
  t.same(seqsOf(onB), [], 'seq 2 waits for seq 1')
  a.feed.publish('r', first, null)
  await waitUntil(() => seqsOf(onB).length === 2, 500, 'both delivered')
  t.same(seqsOf(onB), [1, 2])
  t.same(store.reads, [], 'the bus filled the gap')
})

t.test('a message the bus lost is read from the database before what follows it', async (t) => {
  const store = createStore()
  const network = createMemoryBusNetwork()
  const a = startNode(t, network, store)
  const b = startNode(t, network, store)
  await joinLive(a, 'r', 0)
  const onB = await joinLive(b, 'r', 0)
  const sender = a.uws.socket()
  network.dropWhere((_roomId, envelope) => envelope.kind === 'message' && envelope.seq === 2)
  for (let i = 0; i < 4; i++) a.feed.publish('r', store.commit('r'), sender.ws)
  await waitUntil(() => seqsOf(onB).length === 4, 2000, 'the gap filled')
  t.same(seqsOf(onB), [1, 2, 3, 4])
  t.same(store.reads, [{ roomId: 'r', afterSeq: 1, upTo: 2 }], 'only the missing seq was read')
  t.equal(b.feed.stats().repaired, 1)
})

t.test('a held message keeps its sender: after a repair the sender still gets no copy', async (t) => {
  const store = createStore()
  const network = createMemoryBusNetwork()
  const a = startNode(t, network, store)
  const b = startNode(t, network, store)
  const onA = await joinLive(a, 'r', 0)
  await joinLive(b, 'r', 0)
  const sender = await joinLive(b, 'r', 0)
  network.dropWhere((_roomId, envelope) => envelope.kind === 'message' && envelope.seq === 1)
  a.feed.publish('r', store.commit('r'), null)
  b.feed.publish('r', store.commit('r'), sender.ws)
  await waitUntil(() => b.feed.delivered('r') === 2, 2000, 'b caught up')
  t.same(seqsOf(sender), [1], 'the sender got the other message, not its own')
  t.same(seqsOf(onA), [1, 2])
})

t.test('a lost last message is found by the check against the database', async (t) => {
  const store = createStore()
  const network = createMemoryBusNetwork()
  const a = startNode(t, network, store)
  const b = startNode(t, network, store, { checkEveryMs: 50 })
  await joinLive(a, 'r', 0)
  const onB = await joinLive(b, 'r', 0)
  network.dropWhere(() => true)
  a.feed.publish('r', store.commit('r'), null)
  await waitUntil(() => seqsOf(onB).length === 1, 2000, 'the check repaired it')
  t.same(seqsOf(onB), [1])
  t.ok(b.feed.stats().checks > 0)
})

t.test('after the bus comes back every room is checked and what it missed is delivered, in order', async (t) => {
  const store = createStore()
  const network = createMemoryBusNetwork()
  const a = startNode(t, network, store)
  const b = startNode(t, network, store)
  await joinLive(a, 'r', 0)
  await joinLive(a, 's', 0)
  const inR = await joinLive(b, 'r', 0)
  const inS = await joinLive(b, 's', 0)
  b.bus.disconnect()
  for (let i = 0; i < 5; i++) a.feed.publish('r', store.commit('r'), null)
  a.feed.publish('s', store.commit('s'), null)
  await delay(50)
  t.same(seqsOf(inR), [], 'nothing arrives while disconnected')
  b.bus.reconnect()
  await waitUntil(() => seqsOf(inR).length === 5 && seqsOf(inS).length === 1, 2000, 'resynced')
  t.same(seqsOf(inR), [1, 2, 3, 4, 5])
  t.same(seqsOf(inS), [1])
  a.feed.publish('r', store.commit('r'), null)
  await waitUntil(() => seqsOf(inR).length === 6, 2000, 'live again')
})

t.test('a room that cannot be repaired in time has its sockets told to resume, never skipped', async (t) => {
  const store = createStore()
  const network = createMemoryBusNetwork()
  const a = startNode(t, network, store)
  const b = startNode(t, network, store, { repairDeadlineMs: 300 })
  await joinLive(a, 'r', 0)
  const onB = await joinLive(b, 'r', 0)
  network.dropWhere((_roomId, envelope) => envelope.kind === 'message' && envelope.seq === 1)
  store.fail(true)
  a.feed.publish('r', store.commit('r'), null)
  a.feed.publish('r', store.commit('r'), null)
  await waitUntil(() => b.resumed.length === 1, 3000, 'the socket was told to resume')
  t.equal(b.resumed[0], onB.ws)
  t.same(seqsOf(onB), [], 'seq 2 was never delivered past the gap')
  t.equal(b.feed.stats().resumed, 1)
})

t.test('a join placed after the room moved on here gets its buffer from where the feed stood', async (t) => {
  const store = createStore()
  const network = createMemoryBusNetwork()
  const a = startNode(t, network, store)
  await joinLive(a, 'r', 0)
  for (let i = 0; i < 3; i++) a.feed.publish('r', store.commit('r'), null)
  const late = a.uws.socket()
  const buffer = a.feed.openBuffer('r', late.ws)
  t.equal(buffer.from, 3, 'the buffer starts where the room stands here')
  a.feed.publish('r', store.commit('r'), null)
  await a.feed.caughtUp('r', 4)
  t.same(buffer.frames.map((f) => f.seq), [4])
  a.feed.closeBuffer(buffer)
})

t.test('caughtUp waits for messages known to be committed, reading them if the bus does not bring them', async (t) => {
  const store = createStore()
  const network = createMemoryBusNetwork()
  const a = startNode(t, network, store)
  const b = startNode(t, network, store)
  await joinLive(a, 'r', 0)
  await joinLive(b, 'r', 0)
  network.dropWhere(() => true)
  a.feed.publish('r', store.commit('r'), null)
  a.feed.publish('r', store.commit('r'), null)
  const joiner = b.uws.socket()
  const buffer = b.feed.openBuffer('r', joiner.ws)
  t.equal(buffer.from, 0)
  await b.feed.caughtUp('r', 2)
  t.same(buffer.frames.map((f) => f.seq), [1, 2], 'read from the database, in order, into the buffer')
  b.feed.closeBuffer(buffer)
})

t.test('the first join sets where a room stands; earlier messages are not delivered live', async (t) => {
  const store = createStore()
  const network = createMemoryBusNetwork()
  const a = startNode(t, network, store)
  const b = startNode(t, network, store)
  await joinLive(a, 'r', 0)
  a.feed.publish('r', store.commit('r'), null)
  a.feed.publish('r', store.commit('r'), null)
  const onB = await joinLive(b, 'r', 2)
  a.feed.publish('r', store.commit('r'), null)
  await waitUntil(() => seqsOf(onB).length === 1, 2000, 'live message')
  t.same(seqsOf(onB), [3])
})

t.test('duplicates are dropped', async (t) => {
  const store = createStore()
  const node = startNode(t, createMemoryBusNetwork(), store)
  const socket = await joinLive(node, 'r', 0)
  const frame = store.commit('r')
  node.feed.publish('r', frame, null)
  node.feed.publish('r', frame, null)
  t.same(seqsOf(socket), [1])
})

t.test('typing and presence events cross nodes at once, to joining sockets too, never back to `except`', async (t) => {
  const store = createStore()
  const network = createMemoryBusNetwork()
  const a = startNode(t, network, store)
  const b = startNode(t, network, store)
  const typist = await joinLive(a, 'r', 0)
  const other = await joinLive(a, 'r', 0)
  const remote = await joinLive(b, 'r', 0)
  const joiner = b.uws.socket()
  const buffer = b.feed.openBuffer('r', joiner.ws)
  a.feed.broadcast('r', { text: 'typing', userId: typist.state.user.id }, typist.ws)
  await waitUntil(() => remote.received.length === 1, 1000, 'crossed')
  t.same(typist.received, [])
  t.same(other.received, ['typing'])
  t.same(remote.received, ['typing'])
  t.same(buffer.events, [{ text: 'typing', userId: typist.state.user.id }])
  b.feed.closeBuffer(buffer)
})

t.test('a removal from a private room reaches every node', async (t) => {
  const store = createStore()
  const network = createMemoryBusNetwork()
  const a = startNode(t, network, store)
  const b = startNode(t, network, store)
  const c = startNode(t, network, store)
  await joinLive(b, 'r', 0)
  a.feed.revoke('r', '7')
  await waitUntil(() => b.revoked.length === 1, 1000, 'crossed')
  t.same(a.revoked, ['r/7'], 'the node that removed acts at once')
  t.same(b.revoked, ['r/7'])
  t.same(c.revoked, [], 'a node without sockets in the room is not subscribed to it')
})

t.test('a node listens to a room only while it has sockets there', async (t) => {
  const store = createStore()
  const network = createMemoryBusNetwork()
  const a = startNode(t, network, store)
  const b = startNode(t, network, store)
  await joinLive(a, 'r', 0)
  const onB = await joinLive(b, 'r', 0)
  b.feed.unsubscribe(onB.ws, 'r')
  t.equal(b.feed.delivered('r'), undefined, 'forgotten')
  t.equal(b.feed.stats().rooms, 0)
  a.feed.publish('r', store.commit('r'), null)
  await delay(20)
  t.equal(b.bus.stats().received, 0, 'nothing received once unsubscribed')
  const again = await joinLive(b, 'r', 1)
  a.feed.publish('r', store.commit('r'), null)
  await waitUntil(() => seqsOf(again).length === 1, 1000, 'rejoined')
  t.same(seqsOf(again), [2])
})
