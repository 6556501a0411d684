// Presence over real sockets (/work/shared/API.md: `presence` events, `joined.online`,
// GET /rooms/:id/presence, GET /users/:id/presence, HEARTBEAT_TIMEOUT). Per room, a user is online
// while at least one of their sockets is joined there; several sockets of one user are one presence.
// On the server, a user is online while any socket of theirs is open, joined or not.
//
// One server per backend (with a frame limit no test reaches) serves every test but the heartbeat
// one, which starts its own with HEARTBEAT_TIMEOUT=8 (the shortest uWS supports). Rooms are unique
// per test and users fresh, so the tests share the server without seeing each other.
import t, { type Test } from 'tap'
import {
  connectUntilTeardown, createRoom, delay, HIGH_FRAME_RATE, pickFields, readWholeHistory, roomLastSeq, uniqueRoomId, waitUntil, type Account
} from '../helpers/chat.js'
import type { ApiClient } from '../helpers/http.js'
import { eachBackend, startTestServer } from '../helpers/server.js'
import {
  connect, drainUntilPong, nextOrNull, receivedAcks, receivedErrors, type ConnectedSocket, type Frame, type SocketOptions, type TestSocket
} from '../helpers/socket.js'

const PRESENCE_KEYS = ['type', 'room', 'userId', 'username', 'status'] as const
const HEARTBEAT = 8
/** Messages in the room whose replay is long enough to close (or remove) a socket in the middle of it. */
const BIG_COUNT = 2500
/** 2500 × 3000 chars is about 7.5 MB of replay: far more than the kernel's buffers and uWS's high-water mark hold. */
const BIG_BODY = 3000

interface OnlineEntry { userId: string, username: string }

const entry = (u: Account): OnlineEntry => ({ userId: u.id, username: u.username })

/** An `online` list reduced to {userId, username} and sorted by userId; anything else is returned as is, to fail the comparison. */
function sortOnline (list: unknown): unknown {
  if (!Array.isArray(list)) return list
  return list.map((e) => ({ userId: e?.userId, username: e?.username })).sort((a, b) => String(a.userId).localeCompare(String(b.userId)))
}

const onlineOf = (...users: Account[]): unknown => sortOnline(users.map(entry))
const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)

/** The presence event API.md describes, field for field. */
const presenceEvent = (room: string, u: Account, status: 'online' | 'offline'): Record<string, unknown> =>
  ({ type: 'presence', room, userId: u.id, username: u.username, status })

/** The presence frames among `frames` (of one room, if given), reduced to the contract's fields. */
function presenceFrames (frames: readonly Frame[], room?: string): Array<Record<string, unknown>> {
  return frames.filter((f) => f.type === 'presence' && (room === undefined || f.room === room)).map((f) => pickFields(f, PRESENCE_KEYS))
}

/** What a client knows after `joined`: its `online` snapshot with every later presence event of the room applied in order. */
function presenceView (socket: TestSocket, joined: Frame, room: string): unknown {
  const online = new Map<string, OnlineEntry>()
  for (const e of (Array.isArray(joined.online) ? joined.online : [])) online.set(e.userId, { userId: e.userId, username: e.username })
  for (const f of socket.received.slice(socket.received.indexOf(joined) + 1)) {
    if (f.type !== 'presence' || f.room !== room) continue
    if (f.status === 'online') online.set(f.userId, { userId: f.userId, username: f.username })
    else online.delete(f.userId)
  }
  return sortOnline([...online.values()])
}

/** A user's presence events come online, offline, online, … : never twice the same in a row. */
function alternates (statuses: readonly unknown[], startWithOnline: boolean): boolean {
  return statuses.every((s, i) => (i === 0 ? (!startWithOnline || s === 'online') : s !== statuses[i - 1]))
}

/** A list for a test name; `none` when empty. */
function listed (items: readonly unknown[]): string {
  return items.length === 0 ? 'none' : items.map(String).join(', ')
}

/** Reads until `ok` holds or `ms` passes; returns the last value read, so the assertion after it shows what was there. */
async function eventually<T> (read: () => Promise<T>, ok: (value: T) => boolean, ms: number): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await read()
    if (ok(value) || Date.now() > deadline) return value
    await delay(25)
  }
}

/** A small seeded generator, so a failing churn can be replayed with PRESENCE_CHURN_SEED. */
function seeded (seed: number): () => number {
  const start = seed >>> 0
  let s = start === 0 ? 1 : start
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

interface UserPresence { userId: string, status: string, lastSeenAt: string | null }

async function getRoomOnline (api: ApiClient, room: string, token: string): Promise<unknown> {
  const res = await api.request('GET', `/rooms/${encodeURIComponent(room)}/presence`, { token })
  if (res.status !== 200) throw new Error(`presence of ${room}: ${res.status} ${res.text}`)
  if (res.body?.room !== room) throw new Error(`presence of ${room} answered for room ${String(res.body?.room)}`)
  return sortOnline(res.body.online)
}

async function getUserPresence (api: ApiClient, userId: string, token: string): Promise<UserPresence> {
  const res = await api.request<UserPresence>('GET', `/users/${userId}/presence`, { token })
  if (res.status !== 200) throw new Error(`presence of user ${userId}: ${res.status} ${res.text}`)
  return res.body
}

eachBackend(t, async (t, backend) => {
  const { api, baseUrl, server } = await startTestServer(t, backend, { env: HIGH_FRAME_RATE })

  const users = async <const N extends readonly string[]>(...names: N): Promise<{ [K in keyof N]: Account }> =>
    await Promise.all(names.map(async (name) => await api.user(name))) as { [K in keyof N]: Account }
  const open = async (t: Test, u: Account, options: Omit<SocketOptions, 'token'> = {}): Promise<ConnectedSocket> =>
    await connectUntilTeardown(t, baseUrl, u.token, options)
  const join = async (t: Test, s: TestSocket, room: string, extra: Record<string, unknown> = {}): Promise<Frame> => {
    const reply = await s.request({ type: 'join', room, ...extra }, 30_000)
    t.equal(reply.type, 'joined', `join ${room}${reply.type === 'error' ? `: ${String(reply.code)} ${String(reply.message)}` : ''}`)
    return reply
  }
  const leave = async (t: Test, s: TestSocket, room: string): Promise<void> => {
    const reply = await s.request({ type: 'leave', room })
    t.equal(reply.type, 'left', `leave ${room}`)
  }
  const addMember = async (room: string, owner: Account, u: Account): Promise<void> => {
    const res = await api.request('POST', `/rooms/${encodeURIComponent(room)}/members`, { token: owner.token, json: { userId: u.id } })
    if (res.status !== 204) throw new Error(`add ${u.username} to ${room}: ${res.status} ${res.text}`)
  }
  const roomOnline = async (room: string, token: string): Promise<unknown> => await getRoomOnline(api, room, token)
  const userPresence = async (userId: string, token: string): Promise<UserPresence> => await getUserPresence(api, userId, token)
  /** The presence events this socket got since the last call, up to a ping answered now. */
  const presenceNow = async (s: TestSocket, room?: string): Promise<Array<Record<string, unknown>>> => presenceFrames(await drainUntilPong(s), room)
  /** The next presence event about `u` (of `room`), fields reduced, or null if none comes within `ms`. */
  const nextPresence = async (s: TestSocket, room: string, u: Account, ms = 3000): Promise<Record<string, unknown> | null> => {
    const frame = await nextOrNull(s, (f) => f.type === 'presence' && f.room === room && f.userId === u.id, ms)
    return frame === null ? null : pickFields(frame, PRESENCE_KEYS)
  }
  const socketsOpen = (): number => server.app.realtime.stats().gateway.sockets
  /** Waits until the server has handled the close of `s` (its count of sockets dropped to `below`). */
  const closeAndSettle = async (s: TestSocket): Promise<void> => {
    const before = socketsOpen()
    await s.close()
    await waitUntil(() => socketsOpen() < before, 3000, 'the server did not see the socket close')
  }

  // A private room with BIG_COUNT long messages, seeded once by its owner, for the tests that need
  // a join to last (a replay the client can stall by not reading).
  let bigRoom: Promise<{ room: string, owner: Account }> | undefined
  const big = async (): Promise<{ room: string, owner: Account }> => {
    bigRoom ??= (async () => {
      const room = uniqueRoomId('pl', 'big')
      const [owner] = await users('bigowner')
      await createRoom(api, owner, room, true)
      const writer = await connect(baseUrl, owner.token)
      try {
        const joined = await writer.request({ type: 'join', room })
        if (joined.type !== 'joined') throw new Error(`seeding ${room}: ${JSON.stringify(joined)}`)
        const body = 'p'.repeat(BIG_BODY)
        for (let i = 0; i < BIG_COUNT; i++) writer.send({ type: 'message', room, body, clientMsgId: `big-${i}` })
        await waitUntil(() => receivedAcks(writer).length + receivedErrors(writer).length >= BIG_COUNT, 60_000, () => `${receivedAcks(writer).length} of ${BIG_COUNT} seed acks`)
        if (receivedErrors(writer).length > 0) throw new Error(`seeding ${room}: ${JSON.stringify(receivedErrors(writer)[0])}`)
      } finally {
        await writer.close()
      }
      return { room, owner }
    })()
    return await bigRoom
  }
  /** Stops reading the socket (TCP backpressure): a replay to it stalls once the kernel's and uWS's buffers are full. */
  const pauseReading = (s: TestSocket): void => { s.ws.pause() }
  const resumeReading = (s: TestSocket): void => { s.ws.resume() }

  t.test('joined.online lists everyone online there; others get one online for a first socket, none for a second; offline only when the last socket goes', async (t) => {
    const room = uniqueRoomId('pl', 'basic')
    const [alice, bob, carol] = await users('alice', 'bob', 'carol')
    await createRoom(api, alice, room)
    t.strictSame(await roomOnline(room, alice.token), [], 'GET presence: nobody before any socket joins')

    const a = await open(t, alice)
    const ja = await join(t, a, room)
    t.strictSame(sortOnline(ja.online), onlineOf(alice), 'the first joiner: online is itself alone')
    t.strictSame(await presenceNow(a), [], 'the joiner gets no presence event about itself')
    t.strictSame(await roomOnline(room, alice.token), onlineOf(alice), 'GET presence: alice')

    const b1 = await open(t, bob)
    const jb = await join(t, b1, room)
    t.strictSame(sortOnline(jb.online), onlineOf(alice, bob), 'bob\'s joined.online: alice and bob himself')
    t.strictSame(await presenceNow(a), [presenceEvent(room, bob, 'online')], 'alice gets exactly one online for bob')
    t.strictSame(await presenceNow(b1), [], 'bob gets no presence event, about himself or anyone')

    const c = await open(t, carol)
    const jc = await join(t, c, room)
    t.strictSame(sortOnline(jc.online), onlineOf(alice, bob, carol), 'carol\'s joined.online: all three')
    t.strictSame(await presenceNow(a), [presenceEvent(room, carol, 'online')], 'alice: exactly one online for carol')
    t.strictSame(await presenceNow(b1), [presenceEvent(room, carol, 'online')], 'bob: exactly one online for carol')
    t.strictSame(await presenceNow(c), [], 'carol gets no presence event')
    t.strictSame(await roomOnline(room, bob.token), onlineOf(alice, bob, carol), 'GET presence: all three')

    // A second device of bob's: one presence, whatever it does while the first is there.
    const b2 = await open(t, bob)
    const jb2 = await join(t, b2, room)
    t.strictSame(sortOnline(jb2.online), onlineOf(alice, bob, carol), 'a second socket\'s joined.online lists bob once')
    for (const [s, who] of [[a, 'alice'], [c, 'carol'], [b1, 'bob\'s first socket'], [b2, 'bob\'s second socket']] as const) {
      t.strictSame(await presenceNow(s), [], `${who}: no presence event for bob's second socket joining`)
    }
    await leave(t, b2, room)
    for (const [s, who] of [[a, 'alice'], [c, 'carol'], [b1, 'bob\'s first socket']] as const) {
      t.strictSame(await presenceNow(s), [], `${who}: no presence event for bob's second socket leaving`)
    }
    t.strictSame(await roomOnline(room, alice.token), onlineOf(alice, bob, carol), 'GET presence: bob still online with one socket')

    await join(t, b2, room)
    await closeAndSettle(b1)
    for (const [s, who] of [[a, 'alice'], [c, 'carol'], [b2, 'bob\'s second socket']] as const) {
      t.strictSame(await presenceNow(s), [], `${who}: no presence event when bob's first socket closes while his second is joined`)
    }
    t.strictSame(await roomOnline(room, alice.token), onlineOf(alice, bob, carol), 'GET presence: bob still online')

    await b2.close()
    t.strictSame(await nextPresence(a, room, bob), presenceEvent(room, bob, 'offline'), 'bob\'s last socket closed: alice gets offline')
    t.strictSame(await nextPresence(c, room, bob), presenceEvent(room, bob, 'offline'), 'and carol')
    t.strictSame(await presenceNow(a), [], 'alice: exactly one offline')
    t.strictSame(await presenceNow(c), [], 'carol: exactly one offline')
    t.strictSame(await roomOnline(room, alice.token), onlineOf(alice, carol), 'GET presence: bob gone')

    await leave(t, c, room)
    t.strictSame(await presenceNow(a), [presenceEvent(room, carol, 'offline')], 'carol\'s only socket left: exactly one offline')
    t.strictSame(await presenceNow(c), [], 'the socket that left gets no presence event')
    t.strictSame(await roomOnline(room, alice.token), onlineOf(alice), 'GET presence: alice alone')

    const c2 = await open(t, carol)
    const jc2 = await join(t, c2, room)
    t.strictSame(sortOnline(jc2.online), onlineOf(alice, carol), 'joined.online after the churn: alice and carol')
    t.strictSame(await presenceNow(a), [presenceEvent(room, carol, 'online')], 'carol back: one online')
  })

  t.test('removal from a private room: left {reason: removed} on each of the user\'s sockets and one offline', async (t) => {
    const room = uniqueRoomId('pl', 'private')
    const other = uniqueRoomId('pl', 'public')
    const [alice, bob] = await users('alice', 'bob')
    await createRoom(api, alice, room, true)
    await createRoom(api, alice, other)
    await addMember(room, alice, bob)

    const a = await open(t, alice)
    await join(t, a, room)
    const b1 = await open(t, bob)
    const b2 = await open(t, bob)
    await join(t, b1, room)
    await join(t, b1, other)
    await join(t, b2, room)
    t.strictSame(await presenceNow(a), [presenceEvent(room, bob, 'online')], 'bob\'s two sockets: one online')

    const removed = await api.request('DELETE', `/rooms/${encodeURIComponent(room)}/members/${bob.id}`, { token: alice.token })
    t.equal(removed.status, 204, 'the creator removes bob')
    for (const [s, which] of [[b1, 'first'], [b2, 'second']] as const) {
      const left = await nextOrNull(s, (f) => f.type === 'left' && f.room === room, 3000)
      t.strictSame(pickFields(left ?? undefined, ['type', 'room', 'reason']), { type: 'left', room, reason: 'removed' }, `bob's ${which} socket: left {reason: removed}`)
    }
    t.strictSame(await nextPresence(a, room, bob), presenceEvent(room, bob, 'offline'), 'alice gets bob offline')
    t.strictSame(await presenceNow(a), [], 'exactly one offline, although two of his sockets were removed')
    t.strictSame(await roomOnline(room, alice.token), onlineOf(alice), 'GET presence of the private room: alice alone')
    t.strictSame(await roomOnline(other, bob.token), onlineOf(bob), 'bob is still online in his other room')
    t.equal((await userPresence(bob.id, alice.token)).status, 'online', 'and on the server (his sockets are open)')
    t.strictSame(await presenceNow(b1), [], 'bob\'s sockets get no presence event about it')

    // Nothing of the room reaches the removed sockets any more.
    const ack = await a.request({ type: 'message', room, body: 'after the removal' })
    t.equal(ack.type, 'ack', 'alice can still post')
    for (const s of [b1, b2]) t.strictSame((await drainUntilPong(s)).filter((f) => f.room === room), [], 'a removed socket gets nothing of the room')
  })

  t.test('a re-join on the same socket keeps the presence: no event to others, and one leave still ends it', async (t) => {
    const room = uniqueRoomId('pl', 'rejoin')
    const [alice, bob] = await users('alice', 'bob')
    await createRoom(api, alice, room)
    const a = await open(t, alice)
    await join(t, a, room)
    for (let i = 0; i < 3; i++) t.equal((await a.request({ type: 'message', room, body: `m${i}` })).type, 'ack', `message ${i} stored`)
    const b = await open(t, bob)
    await join(t, b, room)
    t.strictSame(await presenceNow(a), [presenceEvent(room, bob, 'online')], 'bob online once')

    const again = await join(t, b, room)
    t.strictSame(sortOnline(again.online), onlineOf(alice, bob), 're-join: joined.online still lists bob')
    const replayed = await join(t, b, room, { afterSeq: 0 })
    t.strictSame(sortOnline(replayed.online), onlineOf(alice, bob), 're-join with a replay: joined.online still lists bob')
    // Two re-joins at once, without waiting for either.
    b.send({ type: 'join', room, ref: 'rj-1' })
    b.send({ type: 'join', room, afterSeq: 1, ref: 'rj-2' })
    t.equal((await b.next((f) => f.ref === 'rj-1')).type, 'joined', 'first of two pipelined re-joins')
    t.equal((await b.next((f) => f.ref === 'rj-2')).type, 'joined', 'second of two pipelined re-joins')
    t.strictSame(await presenceNow(a), [], 'alice got no presence event from any re-join (no offline/online flap)')
    t.strictSame(await presenceNow(b), [], 'bob got none either')
    t.strictSame(await roomOnline(room, alice.token), onlineOf(alice, bob), 'GET presence: both')

    // The socket counts once however often it joined: a single leave makes bob offline.
    await leave(t, b, room)
    t.strictSame(await nextPresence(a, room, bob), presenceEvent(room, bob, 'offline'), 'one leave after four joins: offline')
    t.strictSame(await presenceNow(a), [], 'and nothing else')
    t.strictSame(await roomOnline(room, alice.token), onlineOf(alice), 'GET presence: bob gone')
  })

  t.test('presence is per room: leaving one room is offline there only', async (t) => {
    const roomA = uniqueRoomId('pl', 'perA')
    const roomB = uniqueRoomId('pl', 'perB')
    const [alice, bob, carol] = await users('alice', 'bob', 'carol')
    await createRoom(api, alice, roomA)
    await createRoom(api, alice, roomB)
    const a = await open(t, alice)
    await join(t, a, roomA)
    const c = await open(t, carol)
    await join(t, c, roomB)
    const b = await open(t, bob)
    await join(t, b, roomA)
    await join(t, b, roomB)
    t.strictSame(await presenceNow(a), [presenceEvent(roomA, bob, 'online')], 'alice (in A): bob online in A, nothing about B')
    t.strictSame(await presenceNow(c), [presenceEvent(roomB, bob, 'online')], 'carol (in B): bob online in B, nothing about A')

    await leave(t, b, roomA)
    t.strictSame(await presenceNow(a), [presenceEvent(roomA, bob, 'offline')], 'alice: bob offline in A')
    t.strictSame(await presenceNow(c), [], 'carol: nothing, bob is still in B')
    t.strictSame(await roomOnline(roomA, alice.token), onlineOf(alice), 'GET presence of A: without bob')
    t.strictSame(await roomOnline(roomB, alice.token), onlineOf(bob, carol), 'GET presence of B: bob still there')
    t.equal((await userPresence(bob.id, alice.token)).status, 'online', 'bob is online on the server')

    await b.close()
    t.strictSame(await nextPresence(c, roomB, bob), presenceEvent(roomB, bob, 'offline'), 'bob closes: carol gets offline in B')
    t.strictSame(await presenceNow(a), [], 'alice gets no second offline for A')
    t.strictSame(await roomOnline(roomB, carol.token), onlineOf(carol), 'GET presence of B: without bob')
  })

  t.test('GET /users/:id/presence: online while any socket is open, joined or not; lastSeenAt written when the last one closes', async (t) => {
    const room = uniqueRoomId('pl', 'user')
    const [alice, dave, erin] = await users('alice', 'dave', 'erin')
    await createRoom(api, alice, room)
    const a = await open(t, alice)
    await join(t, a, room)
    t.strictSame(await userPresence(dave.id, alice.token), { userId: dave.id, status: 'offline', lastSeenAt: null }, 'before any socket: offline, never seen')

    const d1 = await open(t, dave)
    const online = await userPresence(dave.id, alice.token)
    t.equal(online.status, 'online', 'a socket that joined nothing: online on the server')
    const drift = online.lastSeenAt === null ? Infinity : Math.abs(Date.parse(online.lastSeenAt) - Date.now())
    t.ok(drift < 2000, `while online, lastSeenAt is now (${String(online.lastSeenAt)})`)
    t.strictSame(await roomOnline(room, alice.token), onlineOf(alice), 'but in no room list: not in a room alice is in')
    const general = await roomOnline('general', alice.token)
    t.notOk(Array.isArray(general) && general.some((e) => e?.userId === dave.id), 'and not in general')
    t.strictSame(await presenceNow(a), [], 'nobody in the room hears of it')

    const d2 = await open(t, dave)
    await closeAndSettle(d1)
    t.equal((await userPresence(dave.id, alice.token)).status, 'online', 'one of two sockets closed: still online')

    // What the first socket's opening wrote is now well in the past, so the close's write is told apart.
    await delay(300)
    const beforeClose = Date.now()
    await closeAndSettle(d2)
    const after = await eventually(async () => await userPresence(dave.id, alice.token),
      (p) => p.status === 'offline' && p.lastSeenAt !== null && Date.parse(p.lastSeenAt) >= beforeClose - 20, 3000)
    t.equal(after.status, 'offline', 'the last socket closed: offline')
    const seenAt = after.lastSeenAt === null ? NaN : Date.parse(after.lastSeenAt)
    t.ok(seenAt >= beforeClose - 20, `lastSeenAt (${String(after.lastSeenAt)}) is not earlier than just before the close (${new Date(beforeClose).toISOString()})`)
    t.ok(seenAt <= Date.now() + 20, 'and not in the future')
    t.ok(typeof after.lastSeenAt === 'string' && new Date(after.lastSeenAt).toISOString() === after.lastSeenAt, 'ISO-8601')
    t.strictSame(await userPresence(erin.id, dave.token), { userId: erin.id, status: 'offline', lastSeenAt: null }, 'a user who never connected: still never seen')
  })

  t.test('a socket closed right after sending join leaves no ghost', async (t) => {
    const room = uniqueRoomId('pl', 'ghost')
    const [alice, frank] = await users('alice', 'frank')
    await createRoom(api, alice, room)
    const a = await open(t, alice)
    await join(t, a, room)

    // Close (or drop) at various points of the join: before it starts, during its reads, around presence.
    const pauses = [0, 0, 1, 1, 2, 3, 4, 6, 8, 12, 20, 30]
    for (const [k, ms] of pauses.entries()) {
      const f = await open(t, frank)
      f.send({ type: 'join', room })
      if (ms > 0) await delay(ms)
      if (k % 2 === 0) f.ws.close()
      else f.ws.terminate()
    }
    // Two sockets of his joining at once, both closed at once.
    const [f1, f2] = [await open(t, frank), await open(t, frank)]
    f1.send({ type: 'join', room })
    f2.send({ type: 'join', room })
    await delay(2)
    f1.ws.close()
    f2.ws.terminate()

    const list = await eventually(async () => await roomOnline(room, alice.token), (v) => same(v, onlineOf(alice)), 5000)
    t.strictSame(list, onlineOf(alice), 'GET presence: frank is not left online in the room')
    const gone = await eventually(async () => await userPresence(frank.id, alice.token), (p) => p.status === 'offline', 5000)
    t.equal(gone.status, 'offline', 'nor on the server')
    await delay(200)
    const events = (await presenceNow(a, room)).filter((f) => f.userId === frank.id)
    const statuses = events.map((f) => f.status)
    t.ok(alternates(statuses, true) && statuses.length % 2 === 0, `alice: every online about frank is followed by its offline (${listed(statuses)})`)
    t.strictSame(events.filter((f) => !same(f, presenceEvent(room, frank, f.status as 'online' | 'offline'))), [], 'each event is well-formed')
    t.comment(`frank's joins got as far as presence ${statuses.length / 2} times of ${pauses.length + 2}`)
  })

  t.test('a socket closed during a long replay (afterSeq 0) leaves no ghost', async (t) => {
    const { room, owner } = await big()
    const [frank] = await users('frank')
    await addMember(room, owner, frank)
    const o = await open(t, owner)
    await join(t, o, room)

    const ways = ['close after the first replayed message', 'stop reading, then close', 'stop reading, then drop the connection', 'drop after the first replayed message'] as const
    for (const how of ways) {
      const f = await open(t, frank)
      f.send({ type: 'join', room, afterSeq: 0, ref: 'long' })
      const first = await f.next('message', 10_000)
      t.equal(first.seq, 1, `${how}: the replay started`)
      if (how.startsWith('stop reading')) {
        pauseReading(f)
        await delay(150)
      }
      if (how.endsWith('close') || how.startsWith('close')) f.ws.close()
      else f.ws.terminate()
      t.comment(`${how}: ${f.received.filter((x) => x.type === 'message').length} messages arrived before the close`)
    }
    const list = await eventually(async () => await roomOnline(room, owner.token), (v) => same(v, onlineOf(owner)), 5000)
    t.strictSame(list, onlineOf(owner), 'GET presence: frank is not left online in the room')
    const gone = await eventually(async () => await userPresence(frank.id, owner.token), (p) => p.status === 'offline', 5000)
    t.equal(gone.status, 'offline', 'nor on the server')
    await delay(200)
    const statuses = (await presenceNow(o, room)).filter((f) => f.userId === frank.id).map((f) => f.status)
    t.ok(alternates(statuses, true) && statuses.length % 2 === 0, `the owner: every online about frank is followed by its offline (${listed(statuses)})`)
    t.equal((await o.request({ type: 'ping' })).type, 'pong', 'the observer\'s socket still works')
  })

  t.test('removed from a private room while its join (a long replay) is in progress: no ghost', async (t) => {
    const { room, owner } = await big()
    const [gina] = await users('gina')
    await addMember(room, owner, gina)
    const o = await open(t, owner)
    await join(t, o, room)

    const g = await open(t, gina)
    g.send({ type: 'join', room, afterSeq: 0, ref: 'g-join' })
    // Room access was checked before the first replayed message; from here the replay stalls.
    t.equal((await g.next('message', 10_000)).seq, 1, 'the replay started')
    pauseReading(g)
    await delay(200)
    const removed = await api.request('DELETE', `/rooms/${encodeURIComponent(room)}/members/${gina.id}`, { token: owner.token })
    t.equal(removed.status, 204, 'the owner removes gina while her join is replaying')
    t.comment(`while stalled: GET presence lists ${JSON.stringify(await roomOnline(room, owner.token))}`)
    resumeReading(g)

    const reply = await g.next((f) => f.ref === 'g-join', 30_000)
    if (reply.type === 'joined') {
      // Joined after the removal: the removal must still take her out, as it does a joined socket.
      const left = await nextOrNull(g, (f) => f.type === 'left' && f.room === room, 3000)
      t.strictSame(pickFields(left ?? undefined, ['type', 'room', 'reason']), { type: 'left', room, reason: 'removed' },
        'the join completed after the removal, so left {reason: removed} must follow it')
    } else {
      const refused = (reply.type === 'error' && reply.code === 'forbidden') || (reply.type === 'left' && reply.reason === 'removed')
      t.ok(refused, `or the join ends refused: error forbidden, or left {reason: removed} (got ${JSON.stringify(reply)})`)
    }
    const list = await eventually(async () => await roomOnline(room, owner.token), (v) => same(v, onlineOf(owner)), 3000)
    t.strictSame(list, onlineOf(owner), 'GET presence: gina is not online in a private room she was removed from')
    await delay(100)
    const statuses = (await presenceNow(o, room)).filter((f) => f.userId === gina.id).map((f) => f.status)
    t.ok(alternates(statuses, true) && statuses.length % 2 === 0, `the owner: no online about gina without its offline (${listed(statuses)})`)

    const ack = await o.request({ type: 'message', room, body: 'after the removal' })
    t.equal(ack.type, 'ack', 'the owner posts')
    const leaked = (await drainUntilPong(g, 10_000)).filter((f) => f.type === 'message' && f.id === ack.id)
    t.strictSame(leaked, [], 'the removed user does not get the private room\'s new message')
  })

  t.test('presence and typing sent while a socket is joining (a stalled replay) come right after its joined, on top of its snapshot', async (t) => {
    const { room, owner } = await big()
    const [hank, ivan, julia] = await users('hank', 'ivan', 'julia')
    for (const u of [hank, ivan, julia]) await addMember(room, owner, u)

    const h = await open(t, hank)
    h.send({ type: 'join', room, afterSeq: 0, ref: 'h-join' })
    t.equal((await h.next('message', 10_000)).seq, 1, 'hank\'s replay started')
    pauseReading(h)
    await delay(150)

    const i = await open(t, ivan)
    await join(t, i, room)
    i.send({ type: 'typing', room, typing: true })
    const j = await open(t, julia)
    await join(t, j, room)
    await leave(t, j, room)
    t.comment(`while hank's join was stalled: GET presence lists ${JSON.stringify(await roomOnline(room, owner.token))}`)
    resumeReading(h)

    const joined = await h.next((f) => f.ref === 'h-join', 30_000)
    t.equal(joined.type, 'joined', 'hank joined')
    await drainUntilPong(h, 10_000)
    const at = h.received.indexOf(joined)
    t.equal(h.received.slice(0, at).filter((f) => f.type === 'message').length, joined.lastSeq, 'after the whole replay')
    t.strictSame(h.received.slice(0, at).filter((f) => f.type === 'presence' || f.type === 'typing'), [], 'no presence or typing before joined')
    t.strictSame(sortOnline(joined.online), onlineOf(hank, ivan), 'joined.online: hank and ivan (julia already left)')
    const after = h.received.slice(at + 1, at + 5).map((f) => f.type === 'typing' ? pickFields(f, ['type', 'room', 'userId', 'username', 'typing']) : pickFields(f, PRESENCE_KEYS))
    t.strictSame(after, [
      presenceEvent(room, ivan, 'online'),
      { type: 'typing', room, userId: ivan.id, username: ivan.username, typing: true },
      presenceEvent(room, julia, 'online'),
      presenceEvent(room, julia, 'offline')
    ], 'right after joined, in the order they happened: ivan online, ivan typing, julia online, julia offline')
    t.strictSame(presenceFrames(h.received.slice(at + 5), room), [], 'nothing about hank himself, nothing twice')
    t.strictSame(presenceView(h, joined, room), await roomOnline(room, owner.token), 'snapshot plus events equals GET presence')
  })

  t.test('reconnecting: the old socket closes while the new one is still joining; the new socket\'s view still lists its own user', async (t) => {
    const { room, owner } = await big()
    const [kate] = await users('kate')
    await addMember(room, owner, kate)
    const o = await open(t, owner)
    const ownJoin = await join(t, o, room)
    const old = await open(t, kate)
    await join(t, old, room)
    t.strictSame(await nextPresence(o, room, kate), presenceEvent(room, kate, 'online'), 'the owner sees kate online')

    // The client reconnects: a new socket joins with afterSeq (a long replay here, stalled), and
    // the old socket goes away before that join is done.
    const fresh = await open(t, kate)
    fresh.send({ type: 'join', room, afterSeq: 0, ref: 'k-join' })
    t.equal((await fresh.next('message', 10_000)).seq, 1, 'the new socket\'s replay started')
    pauseReading(fresh)
    await delay(150)
    await closeAndSettle(old)
    t.strictSame(await nextPresence(o, room, kate), presenceEvent(room, kate, 'offline'), 'the old socket closed: the owner sees kate offline meanwhile')
    resumeReading(fresh)

    const joined = await fresh.next((f) => f.ref === 'k-join', 30_000)
    t.equal(joined.type, 'joined', 'the new socket joined')
    t.strictSame(await nextPresence(o, room, kate), presenceEvent(room, kate, 'online'), 'then the owner sees kate online again')
    await drainUntilPong(fresh, 10_000)
    const rest = await roomOnline(room, owner.token)
    t.strictSame(rest, onlineOf(owner, kate), 'GET presence: kate is online (her new socket is joined)')
    t.strictSame(presenceView(o, ownJoin, room), rest, 'the owner\'s view equals GET presence')
    t.strictSame(presenceView(fresh, joined, room), rest, 'the new socket\'s view (joined.online plus later events) equals GET presence: kate online')
    t.strictSame(presenceFrames(fresh.received.slice(fresh.received.indexOf(joined) + 1), room).filter((f) => f.userId === kate.id), [],
      'the new socket gets no presence event about its own user')
  })

  t.test('under churn, each observer\'s view (joined.online plus later events) ends equal to GET presence', async (t) => {
    const room = uniqueRoomId('pl', 'churn')
    const observers = await users('obs0', 'obs1', 'obs2')
    const churners = await users('churn0', 'churn1', 'churn2', 'churn3')
    await createRoom(api, observers[0], room)
    const seed = Number(process.env.PRESENCE_CHURN_SEED ?? (Date.now() % 1_000_000))
    t.comment(`churn seed ${seed} (set PRESENCE_CHURN_SEED to replay the same choices)`)

    interface ChurnSocket { readonly s: ConnectedSocket, want: 'join' | 'leave' | null, last: Promise<unknown> }
    const all: TestSocket[] = []
    t.teardown(() => { for (const s of all) s.ws.terminate() })
    const held = new Map<string, ChurnSocket[]>()
    const CHURN_MS = 2000
    const deadline = Date.now() + CHURN_MS
    const counts = { joins: 0, leaves: 0, closes: 0, drops: 0, opens: 0 }

    const churn = async (u: Account, random: () => number): Promise<void> => {
      const mine: ChurnSocket[] = []
      held.set(u.id, mine)
      while (Date.now() < deadline) {
        if (mine.length === 0 || (mine.length < 3 && random() < 0.15)) {
          const s = await connect(baseUrl, u.token)
          all.push(s)
          mine.push({ s, want: null, last: Promise.resolve() })
          counts.opens++
        } else {
          const index = Math.floor(random() * mine.length)
          const x = mine[index] as ChurnSocket
          const r = random()
          if (r < 0.4) {
            x.want = 'join'
            x.last = x.s.request({ type: 'join', room, ...(random() < 0.3 ? { afterSeq: 0 } : {}) }, 20_000).catch(() => null)
            counts.joins++
            if (random() < 0.5) await x.last
          } else if (r < 0.7) {
            x.want = 'leave'
            x.last = x.s.request({ type: 'leave', room }, 20_000).catch(() => null)
            counts.leaves++
            if (random() < 0.5) await x.last
          } else {
            mine.splice(index, 1)
            if (r < 0.85) {
              x.s.ws.close()
              counts.closes++
            } else {
              x.s.ws.terminate()
              counts.drops++
            }
          }
        }
        await delay(Math.floor(random() * 12))
      }
    }
    const watching = observers.map(async (o, n) => {
      const s = await open(t, o)
      await delay(200 + n * 600)
      const joined = await join(t, s, room)
      return { o, s, joined }
    })
    await Promise.all(churners.map(async (u, n) => { await churn(u, seeded(seed * 7 + n)) }))
    const watchers = await Promise.all(watching)
    t.comment(`churn: ${JSON.stringify(counts)}`)

    // Settle: every join and leave still open is answered; closed sockets are handled by the server.
    for (const mine of held.values()) for (const x of mine) await x.last
    const expected = sortOnline([...observers.map(entry), ...churners.filter((u) => held.get(u.id)?.some((x) => x.want === 'join')).map(entry)])
    const list = await eventually(async () => await roomOnline(room, observers[0].token), (v) => same(v, expected), 5000)
    t.strictSame(list, expected, 'GET presence: exactly the users with an open socket whose last word to the room was join')
    await delay(150)

    for (const [n, { o, s, joined }] of watchers.entries()) {
      await drainUntilPong(s)
      const at = s.received.indexOf(joined)
      t.strictSame(presenceFrames(s.received.slice(0, at), room), [], `observer ${n}: no presence event before joined`)
      t.strictSame(presenceView(s, joined, room), list, `observer ${n}: joined.online plus every later event = GET presence`)
      const events = presenceFrames(s.received.slice(at + 1), room)
      t.strictSame(events.filter((f) => f.userId === o.id), [], `observer ${n}: no event about itself`)
      const broken = [...observers, ...churners].filter((u) => !alternates(events.filter((f) => f.userId === u.id).map((f) => f.status), false))
      t.strictSame(broken.map((u) => u.username), [], `observer ${n}: for each user, online and offline alternate (never two in a row)`)
      t.comment(`observer ${n}: snapshot of ${Array.isArray(joined.online) ? String(joined.online.length) : '?'}, then ${events.length} events`)
    }
  })

  t.test('presence events are never stored: lastSeq, history and replay are unchanged by them', async (t) => {
    const room = uniqueRoomId('pl', 'stored')
    const [alice, bob, carol] = await users('alice', 'bob', 'carol')
    await createRoom(api, alice, room)
    const a = await open(t, alice)
    await join(t, a, room)
    for (let i = 0; i < 3; i++) t.equal((await a.request({ type: 'message', room, body: `m${i}` })).type, 'ack', `message ${i + 1} stored`)
    const before = await readWholeHistory(api, alice.token, room)
    t.equal(await roomLastSeq(api, alice.token, room), 3, 'lastSeq 3')

    for (let k = 0; k < 4; k++) {
      const b = await open(t, bob)
      await join(t, b, room)
      b.send({ type: 'typing', room, typing: true })
      await leave(t, b, room)
      await join(t, b, room)
      await closeAndSettle(b)
    }
    const statuses = (await presenceNow(a, room)).map((f) => `${String(f.userId === bob.id ? 'bob' : f.userId)} ${String(f.status)}`)
    t.strictSame(statuses, Array.from({ length: 16 }, (_, i) => `bob ${i % 2 === 0 ? 'online' : 'offline'}`), 'alice got bob\'s 8 onlines and 8 offlines')
    t.equal(await roomLastSeq(api, alice.token, room), 3, 'lastSeq is still 3')
    t.strictSame(await readWholeHistory(api, alice.token, room), before, 'history is unchanged')

    const c = await open(t, carol)
    const joined = await join(t, c, room, { afterSeq: 0 })
    t.equal(joined.lastSeq, 3, 'a replay from 0: joined.lastSeq 3')
    const replayed = c.received.slice(0, c.received.indexOf(joined)).filter((f) => f !== c.welcome)
    t.strictSame(replayed.map((f) => `${f.type}:${String(f.seq)}`), ['message:1', 'message:2', 'message:3'], 'the replay is the three messages, no presence')
    const ack = await a.request({ type: 'message', room, body: 'next' })
    t.equal(ack.seq, 4, 'the next message gets seq 4: no seq went to presence')
  })

  t.test(`a socket that stops answering pings (HEARTBEAT_TIMEOUT=${HEARTBEAT}): offline in the room and on the server within HEARTBEAT_TIMEOUT + 5 s`, async (t) => {
    const hb = await startTestServer(t, backend, { env: { HEARTBEAT_TIMEOUT: String(HEARTBEAT) } })
    const [carol, bob] = await Promise.all([hb.api.user('carol'), hb.api.user('bob')])
    const room = uniqueRoomId('pl', 'hb')
    await createRoom(hb.api, carol, room)

    // The observer talks (and answers pings) all along.
    const observer = await connectUntilTeardown(t, hb.baseUrl, carol.token)
    const keepAlive = setInterval(() => { if (observer.ws.readyState === observer.ws.OPEN) observer.send({ type: 'ping' }) }, 1000)
    t.teardown(() => clearInterval(keepAlive))
    await join(t, observer, room)

    const silent = await connectUntilTeardown(t, hb.baseUrl, bob.token, { client: { autoPong: false } })
    let closedAt: number | null = null
    void silent.closed.then(() => { closedAt = Date.now() })
    await join(t, silent, room)
    const silentSince = Date.now()
    const limit = (HEARTBEAT + 5) * 1000
    t.strictSame(await nextPresence(observer, room, bob), presenceEvent(room, bob, 'online'), 'bob online first')
    t.equal((await getUserPresence(hb.api, bob.id, carol.token)).status, 'online', 'GET /users: bob online while his socket is open')

    let userOfflineAfter: number | null = null
    const polling = (async () => {
      while (userOfflineAfter === null && Date.now() - silentSince < limit + 1000) {
        if ((await getUserPresence(hb.api, bob.id, carol.token)).status === 'offline') userOfflineAfter = Date.now() - silentSince
        else await delay(100)
      }
    })()
    const offline = await nextPresence(observer, room, bob, limit + 1000 - (Date.now() - silentSince))
    const offlineAfter = Date.now() - silentSince
    t.strictSame(offline, presenceEvent(room, bob, 'offline'), `the observer gets bob offline (${offlineAfter} ms after his last frame)`)
    t.ok(offlineAfter <= limit, `within HEARTBEAT_TIMEOUT + 5 s (${offlineAfter} ms)`)
    await polling
    t.ok(userOfflineAfter !== null && userOfflineAfter <= limit, `GET /users: offline within HEARTBEAT_TIMEOUT + 5 s (${String(userOfflineAfter)} ms)`)
    t.ok(closedAt !== null, 'the silent socket was closed by the server')
    t.comment(`closed ${closedAt === null ? '?' : closedAt - silentSince} ms after its last frame, with ${JSON.stringify(await Promise.race([silent.closed, delay(0)]))}`)

    const closeTime = closedAt ?? Date.now()
    const seen = await eventually(async () => await getUserPresence(hb.api, bob.id, carol.token),
      (p) => p.lastSeenAt !== null && Date.parse(p.lastSeenAt) >= closeTime - 1000, 3000)
    t.ok(seen.lastSeenAt !== null && Math.abs(Date.parse(seen.lastSeenAt) - closeTime) < 1000,
      `lastSeenAt is the close (${String(seen.lastSeenAt)}), not the open ${HEARTBEAT - 4} s or more before`)
    t.strictSame(await getRoomOnline(hb.api, room, carol.token), onlineOf(carol), 'GET presence of the room: carol alone')
  })
})
