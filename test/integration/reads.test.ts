// Read positions over REST and the socket (API.md v1.1): `PUT /rooms/:id/read`,
// `GET /rooms/:id/receipts`, the `read` frame and its reply, `receipt`, `joined.readSeq`, and
// Room's `readSeq`/`unread`.
//
// What is fixed: a position becomes max(current, min(seq, lastSeq)); the reader's socket gets
// `read {room, readSeq}` (with its ref) and no receipt, every other socket joined to the room
// (the reader's other devices included) gets `receipt {room, userId, username, readSeq}`, and over
// REST every socket of the room gets it; nothing moved, no receipt. Storing a message moves its
// author's position to its seq without a receipt. A room the socket has not joined is `forbidden`;
// a private room is 403 to non-members and an unknown one 404 over REST. A store that cannot
// take the write answers `unavailable` (503 over REST).
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely'
import t, { type Test } from 'tap'
import { createDatabase } from '../../db/create-db.js'
import type { OpenDatabase } from '../../plugins/infra/db.js'
import { assertError } from '../helpers/assertions.js'
import { checkErrorFrame, connectUntilTeardown, createRoom, delay, HIGH_FRAME_RATE, pickFields, range, uniqueRoomId, type Account } from '../helpers/chat.js'
import type { ApiResponse } from '../helpers/http.js'
import { eachBackend, startTestServer } from '../helpers/server.js'
import { drainUntilPong, type ConnectedSocket, type Frame, type TestSocket } from '../helpers/socket.js'

const RECEIPT_KEYS = ['type', 'room', 'userId', 'username', 'readSeq'] as const

const receipt = (room: string, user: Account, readSeq: number): Record<string, unknown> =>
  ({ type: 'receipt', room, userId: user.id, username: user.username, readSeq })

const receiptsIn = (frames: readonly Frame[], room: string): Frame[] => frames.filter((f) => f.type === 'receipt' && f.room === room)

/**
 * A database whose read-position batches can be made to fail as if the database had gone away
 * (SQLSTATE 57P01), while every other statement goes through.
 */
function breakableReads (): { open: OpenDatabase, fail: (on: boolean) => void } {
  let failing = false
  const plugin: KyselyPlugin = {
    transformQuery (args: PluginTransformQueryArgs): RootOperationNode {
      const node = args.node
      if (failing && node.kind === 'RawNode' && node.sqlFragments.join('').includes('for share')) {
        throw Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })
      }
      return node
    },
    async transformResult (args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
      return args.result
    }
  }
  return {
    async open (options) {
      const handle = await createDatabase(options)
      return { ...handle, db: handle.db.withPlugin(plugin) }
    },
    fail: (on) => { failing = on }
  }
}

eachBackend(t, async (t, backend) => {
  const store = breakableReads()
  const { api, baseUrl } = await startTestServer(t, backend, { env: HIGH_FRAME_RATE, openDatabase: store.open })
  const alice = await api.user('alice')
  const bob = await api.user('bob')
  const carol = await api.user('carol')
  const outsider = await api.user('outsider')

  const putRead = async (user: Account, room: string, json: unknown): Promise<ApiResponse> =>
    await api.request('PUT', `/rooms/${encodeURIComponent(room)}/read`, { token: user.token, json })
  const getRoom = async (user: Account, room: string): Promise<ApiResponse> =>
    await api.request('GET', `/rooms/${encodeURIComponent(room)}`, { token: user.token })
  const receiptsOf = async (user: Account, room: string, query = ''): Promise<ApiResponse> =>
    await api.request('GET', `/rooms/${encodeURIComponent(room)}/receipts${query}`, { token: user.token })

  const newRoom = async (label: string, owner: Account, members: Account[] = [], isPrivate = false): Promise<string> => {
    const id = uniqueRoomId('reads', label)
    await createRoom(api, owner, id, isPrivate)
    for (const u of members) {
      const res = await api.request('POST', `/rooms/${encodeURIComponent(id)}/members`, { token: owner.token, json: { userId: u.id } })
      if (res.status !== 204) throw new Error(`add ${u.username} to ${id}: ${res.status} ${res.text}`)
    }
    return id
  }

  const open = async (t: Test, user: Account): Promise<ConnectedSocket> => await connectUntilTeardown(t, baseUrl, user.token)

  const join = async (t: Test, s: TestSocket, room: string): Promise<Frame> => {
    const reply = await s.request({ type: 'join', room })
    t.equal(reply.type, 'joined', `joined ${room}${reply.type === 'error' ? ` (error ${String(reply.code)})` : ''}`)
    return reply
  }

  /** Sends `count` messages from `s` and waits for their acks; returns the acked seqs. */
  const send = async (s: TestSocket, room: string, count: number): Promise<number[]> => {
    const seqs: number[] = []
    for (const i of range(1, count)) {
      const ack = await s.request({ type: 'message', room, body: `message ${i}` })
      if (ack.type !== 'ack') throw new Error(`send to ${room}: ${JSON.stringify(ack)}`)
      seqs.push(ack.seq as number)
    }
    return seqs
  }

  /** The receipts a socket has received for the room up to now (all frames up to a pong taken). */
  const pendingReceipts = async (s: TestSocket, room: string): Promise<Frame[]> => receiptsIn(await drainUntilPong(s), room)

  t.test('storing a message moves its author\'s position to its seq, without a receipt; others\' messages are unread', async (t) => {
    const room = await newRoom('author', alice)
    const a = await open(t, alice)
    const aOther = await open(t, alice)
    const b = await open(t, bob)
    for (const s of [a, aOther, b]) await join(t, s, room)
    const seqs = await send(a, room, 3)
    t.strictSame(seqs, [1, 2, 3], 'acked 1..3')
    t.match((await getRoom(alice, room)).body, { id: room, lastSeq: 3, readSeq: 3, unread: 0 }, 'the author has read what it wrote')
    t.match((await getRoom(bob, room)).body, { id: room, lastSeq: 3, readSeq: 0, unread: 3 }, 'the other member has three unread')
    const listed = (await api.request('GET', '/rooms', { token: alice.token })).body.rooms.find((r: { id: string }) => r.id === room)
    t.match(listed, { readSeq: 3, unread: 0 }, 'GET /rooms says the same')
    for (const [name, s] of [['the author\'s socket', a], ['the author\'s other device', aOther], ['the other member', b]] as const) {
      t.strictSame(await pendingReceipts(s, room), [], `${name}: no receipt for the author's own move`)
    }
    t.strictSame((await receiptsOf(bob, room)).body, { room, receipts: [{ userId: alice.id, username: alice.username, readSeq: 3 }] }, 'the author is listed as a reader')

    await send(b, room, 2)
    t.match((await getRoom(alice, room)).body, { lastSeq: 5, readSeq: 3, unread: 2 }, 'the author now has bob\'s two unread')
    t.match((await getRoom(bob, room)).body, { lastSeq: 5, readSeq: 5, unread: 0 }, 'bob read up to his own last message')
    t.strictSame(await pendingReceipts(a, room), [], 'still no receipt')
  })

  t.test('a read frame: the reader gets read, everyone else in the room gets receipt; REST reaches every socket', async (t) => {
    const room = await newRoom('receipts', carol)
    const c = await open(t, carol)
    await join(t, c, room)
    await send(c, room, 5)
    const b1 = await open(t, bob)
    const b2 = await open(t, bob)
    const a = await open(t, alice)
    for (const s of [b1, b2, a]) await join(t, s, room)
    const others = [['bob\'s other device', b2], ['alice', a], ['carol', c]] as const

    const reply = await b1.request({ type: 'read', room, seq: 2 })
    t.strictSame(reply, { type: 'read', room, readSeq: 2, ref: reply.ref }, 'the reader\'s reply, with its ref')
    for (const [name, s] of others) t.strictSame(pickFields(await s.next('receipt'), RECEIPT_KEYS), receipt(room, bob, 2), `${name} gets the receipt`)
    t.strictSame(await pendingReceipts(b1, room), [], 'the reading socket gets no receipt')

    const again = await b1.request({ type: 'read', room, seq: 2 })
    t.strictSame(again, { type: 'read', room, readSeq: 2, ref: again.ref }, 'the same seq again: the same position')
    const back = await b2.request({ type: 'read', room, seq: 1 })
    t.match(back, { type: 'read', room, readSeq: 2 }, 'a lower seq: the position stays')
    for (const [name, s] of [['bob\'s first socket', b1], ...others] as const) t.strictSame(await pendingReceipts(s, room), [], `${name}: nothing moved, no receipt`)

    const put = await putRead(bob, room, { seq: 4 })
    t.equal(put.status, 200)
    t.strictSame(put.body, { room, readSeq: 4 }, 'PUT answers the new position')
    for (const [name, s] of [['bob\'s first socket', b1], ...others] as const) t.strictSame(pickFields(await s.next('receipt'), RECEIPT_KEYS), receipt(room, bob, 4), `over REST: ${name} gets the receipt`)

    t.strictSame((await putRead(bob, room, { seq: 99 })).body, { room, readSeq: 5 }, 'beyond lastSeq: clamped to lastSeq')
    for (const [name, s] of [['bob\'s first socket', b1], ...others] as const) t.strictSame(pickFields(await s.next('receipt'), RECEIPT_KEYS), receipt(room, bob, 5), `${name} gets the clamped position`)
    t.match(await b1.request({ type: 'read', room, seq: Number.MAX_SAFE_INTEGER }), { type: 'read', room, readSeq: 5 }, 'the socket is clamped too')
    t.strictSame((await putRead(bob, room, { seq: 0 })).body, { room, readSeq: 5 }, 'seq 0 moves nothing back')
    for (const [name, s] of [['bob\'s first socket', b1], ...others] as const) t.strictSame(await pendingReceipts(s, room), [], `${name}: no receipt for reads that moved nothing`)
    t.match((await getRoom(bob, room)).body, { lastSeq: 5, readSeq: 5, unread: 0 }, 'GET /rooms/:id')
  })

  t.test('joined carries the user\'s read position', async (t) => {
    const room = await newRoom('joined', carol)
    const c = await open(t, carol)
    t.match(await join(t, c, room), { readSeq: 0 }, 'a new room: 0')
    await send(c, room, 4)
    const b = await open(t, bob)
    t.match(await join(t, b, room), { lastSeq: 4, readSeq: 0 }, 'never read: 0')
    t.match(await b.request({ type: 'read', room, seq: 3 }), { type: 'read', readSeq: 3 })
    const bAgain = await open(t, bob)
    t.match(await join(t, bAgain, room), { lastSeq: 4, readSeq: 3 }, 'another device joins at the position read')
    const cAgain = await open(t, carol)
    t.match(await join(t, cAgain, room), { lastSeq: 4, readSeq: 4 }, 'the author joins at its own last message')
  })

  t.test('a room without messages: every read stays at 0, with no receipt', async (t) => {
    const room = await newRoom('empty', alice)
    const a = await open(t, alice)
    const b = await open(t, bob)
    for (const s of [a, b]) await join(t, s, room)
    t.strictSame((await putRead(bob, room, { seq: 7 })).body, { room, readSeq: 0 })
    t.match(await b.request({ type: 'read', room, seq: 3 }), { type: 'read', room, readSeq: 0 })
    t.strictSame(await pendingReceipts(a, room), [], 'no receipt')
    t.strictSame((await receiptsOf(alice, room)).body, { room, receipts: [] }, 'nobody is listed')
    t.match((await getRoom(bob, room)).body, { lastSeq: 0, readSeq: 0, unread: 0 })
  })

  t.test('a room the socket has not joined is forbidden; private rooms take membership; unknown rooms are 404', async (t) => {
    const pub = await newRoom('not-joined', alice)
    const secret = await newRoom('secret', alice, [bob], true)
    const s = await open(t, outsider)
    checkErrorFrame(t, await s.request({ type: 'read', room: pub, seq: 1 }), 'forbidden', undefined, 'read before join')
    const ref = 'before-join'
    s.send({ type: 'read', room: pub, seq: 1, ref })
    checkErrorFrame(t, await s.next((f) => f.ref === ref), 'forbidden', ref, 'read before join, ref echoed')
    checkErrorFrame(t, await s.request({ type: 'read', room: 'no-such-room', seq: 1 }), 'forbidden', undefined, 'an unknown room')
    checkErrorFrame(t, await s.request({ type: 'read', room: secret, seq: 1 }), 'forbidden', undefined, 'a private room')
    await join(t, s, pub)
    t.equal((await s.request({ type: 'leave', room: pub })).type, 'left')
    checkErrorFrame(t, await s.request({ type: 'read', room: pub, seq: 1 }), 'forbidden', undefined, 'after leaving')

    assertError(t, await putRead(outsider, secret, { seq: 1 }), 403, 'forbidden', 'PUT read, private, not a member')
    assertError(t, await receiptsOf(outsider, secret), 403, 'forbidden', 'GET receipts, private, not a member')
    assertError(t, await putRead(outsider, 'no-such-room', { seq: 1 }), 404, 'not_found', 'PUT read, unknown room')
    assertError(t, await receiptsOf(outsider, 'no-such-room'), 404, 'not_found', 'GET receipts, unknown room')
    t.strictSame((await putRead(bob, secret, { seq: 1 })).body, { room: secret, readSeq: 0 }, 'a member may')
    t.equal((await receiptsOf(bob, secret)).status, 200, 'a member may list')
    t.equal((await putRead(outsider, pub, { seq: 0 })).status, 200, 'a public room needs no membership')
    assertError(t, await api.request('PUT', `/rooms/${pub}/read`, { json: { seq: 1 } }), 401, 'unauthorized', 'PUT read without a token')
    assertError(t, await api.request('GET', `/rooms/${pub}/receipts`), 401, 'unauthorized', 'GET receipts without a token')
  })

  t.test('invalid reads are bad_request', async (t) => {
    const room = await newRoom('invalid', alice)
    const invalid: Record<string, unknown> = {
      'negative seq': { seq: -1 },
      'fractional seq': { seq: 1.5 },
      'seq as a string': { seq: '3' },
      'seq null': { seq: null },
      'seq beyond 2^53': { seq: 2 ** 53 },
      'missing seq': {},
      'extra field': { seq: 1, room },
      'array body': [{ seq: 1 }],
      'number body': 3
    }
    for (const [label, json] of Object.entries(invalid)) assertError(t, await putRead(alice, room, json), 400, 'bad_request', `PUT ${label}`)
    assertError(t, await api.request('PUT', `/rooms/${room}/read`, { token: alice.token }), 400, 'bad_request', 'PUT without a body')
    assertError(t, await putRead(alice, 'a/b', { seq: 1 }), 400, 'bad_request', 'PUT with an invalid room id')
    for (const query of ['?limit=0', '?limit=101', '?limit=abc', '?limit=1.5', '?limit=-1']) {
      assertError(t, await receiptsOf(alice, room, query), 400, 'bad_request', `GET receipts${query}`)
    }

    const s = await open(t, alice)
    await join(t, s, room)
    const frames: Record<string, Record<string, unknown>> = {
      'negative seq': { type: 'read', room, seq: -1 },
      'fractional seq': { type: 'read', room, seq: 1.5 },
      'seq as a string': { type: 'read', room, seq: '3' },
      'missing seq': { type: 'read', room },
      'missing room': { type: 'read', seq: 1 },
      'invalid room id': { type: 'read', room: 'a/b', seq: 1 }
    }
    for (const [label, frame] of Object.entries(frames)) checkErrorFrame(t, await s.request(frame), 'bad_request', undefined, `read frame, ${label}`)
    t.match((await getRoom(alice, room)).body, { readSeq: 0 }, 'nothing was stored')
  })

  t.test('receipts: readers above 0, highest first, ties by user id, limited', async (t) => {
    const room = await newRoom('listing', carol)
    const c = await open(t, carol)
    await join(t, c, room)
    await send(c, room, 6)
    const readers = [alice, bob, outsider, await api.user('dora'), await api.user('emil')]
    const positions = [3, 5, 3, 0, 1]
    for (const [i, u] of readers.entries()) t.equal((await putRead(u, room, { seq: positions[i] })).status, 200)
    const expected = [{ userId: carol.id, username: carol.username, readSeq: 6 }, ...readers.map((u, i) => ({ userId: u.id, username: u.username, readSeq: positions[i] as number }))]
      .filter((r) => r.readSeq > 0)
      .sort((x, y) => y.readSeq - x.readSeq || Number(x.userId) - Number(y.userId))
    const all = await receiptsOf(outsider, room)
    t.equal(all.status, 200)
    t.strictSame(all.body, { room, receipts: expected }, 'every reader above 0, in order')
    t.strictSame((await receiptsOf(outsider, room, '?limit=2')).body, { room, receipts: expected.slice(0, 2) }, 'limit=2')
    t.strictSame((await receiptsOf(outsider, room, '?limit=100')).body, { room, receipts: expected }, 'limit=100')
  })

  t.test('concurrent reads from two sockets and REST: the highest wins, and no observer sees a position go back', async (t) => {
    const room = await newRoom('race', carol)
    const c = await open(t, carol)
    await join(t, c, room)
    const LAST = 30
    await send(c, room, LAST)
    const b1 = await open(t, bob)
    const b2 = await open(t, bob)
    const a = await open(t, alice)
    for (const s of [b1, b2, a]) await join(t, s, room)
    // Deterministic but scattered: some beyond lastSeq, some lower than what came before.
    const seqs = range(1, 90).map((i) => (i * 37) % 41)
    const replies: Array<Promise<{ asked: number, readSeq: unknown }>> = seqs.map(async (seq, i) => {
      if (i % 3 === 2) {
        const res = await putRead(bob, room, { seq })
        return { asked: seq, readSeq: res.body?.readSeq }
      }
      const reply = await (i % 3 === 0 ? b1 : b2).request({ type: 'read', room, seq })
      return { asked: seq, readSeq: reply.readSeq }
    })
    const answered = await Promise.all(replies)
    const final = Math.min(Math.max(...seqs), LAST)
    t.strictSame(answered.filter((r) => typeof r.readSeq !== 'number' || r.readSeq < Math.min(r.asked, LAST)), [], 'every answer is at least the clamped seq asked for')
    t.match((await getRoom(bob, room)).body, { readSeq: final, unread: LAST - final }, `the position is the highest sent, clamped (${final})`)
    for (const [name, s] of [['alice', a], ['carol', c], ['bob\'s first socket', b1], ['bob\'s second socket', b2]] as const) {
      await drainUntilPong(s)
      const seen = receiptsIn(s.received, room).map((f) => f.readSeq as number)
      t.ok(seen.every((seq, i) => i === 0 || seq > (seen[i - 1] as number)), `${name}: receipts only go up (${seen.join(' ')})`)
      if (s === a || s === c) t.equal(seen.at(-1), final, `${name}: the last receipt is the final position`)
    }
    for (const [name, s] of [['bob\'s first socket', b1], ['bob\'s second socket', b2]] as const) {
      const own = s.received.filter((f) => f.type === 'read' && f.room === room).map((f) => f.readSeq as number)
      t.ok(own.every((seq, i) => i === 0 || seq >= (own[i - 1] as number)), `${name}: its replies never go back`)
    }
  })

  t.test('a store that cannot take the read: unavailable, then served again', async (t) => {
    const room = await newRoom('down', alice)
    const a = await open(t, alice)
    await join(t, a, room)
    await send(a, room, 2)
    const b = await open(t, bob)
    await join(t, b, room)
    store.fail(true)
    t.teardown(() => { store.fail(false) })
    checkErrorFrame(t, await b.request({ type: 'read', room, seq: 1 }), 'unavailable', undefined, 'the read frame')
    assertError(t, await putRead(bob, room, { seq: 1 }), 503, 'unavailable', 'PUT read')
    t.strictSame(await pendingReceipts(a, room), [], 'no receipt')
    store.fail(false)
    // The writer refuses at once for a second after a failure (its cooldown), then tries again.
    await delay(1100)
    t.match(await b.request({ type: 'read', room, seq: 1 }), { type: 'read', room, readSeq: 1 }, 'served again')
    t.strictSame(pickFields(await a.next('receipt'), RECEIPT_KEYS), receipt(room, bob, 1), 'with its receipt')
  })
})
