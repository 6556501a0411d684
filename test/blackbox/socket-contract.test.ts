// Black-box tests of the WebSocket half of the public contract (/work/shared/API.md, "WebSocket /ws"
// and the socket-related Guarantees), plus the two presence routes, which report what the sockets
// do. Everything asserted here comes from API.md; nothing from the
// server's source. API.md allows added fields, so frames are compared on the fields it names
// (exactly, values and types), and extra fields are tolerated.
//
// Not covered here (see socket-limits.test.ts for flooding and heartbeats):
// - close 1001 on shutdown and the SIGTERM / SIGKILL guarantees: tested elsewhere (process tests).
// - close 1011, `unavailable` and `internal`: need a broken store or a bug to provoke.
// - several nodes behind Redis.
//
// The main server runs with a generous per-socket frame limit (WS_RATE / WS_BURST) so that the
// pipelined sends below measure ordering and seq, not the flood limit tested elsewhere.
import t, { type Test } from 'tap'
import {
  checkErrorFrame, connectUntilTeardown, delay, pickFields, range, uniqueRoomId, type Account, type Message
} from '../helpers/chat.js'
import { eachBackend, startTestServer } from '../helpers/server.js'
import {
  drainUntilPong, nextOrNull, refusedUpgrade, type ConnectedSocket, type Frame, type SocketOptions, type TestSocket, type TokenVia
} from '../helpers/socket.js'
import { decodeJwt, signJwt } from '../helpers/tokens.js'

const VIAS: readonly TokenVia[] = ['protocol', 'header', 'query']
const MESSAGE_KEYS = ['type', 'id', 'room', 'seq', 'userId', 'username', 'body', 'clientMsgId', 'createdAt'] as const
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/
const DECIMAL = /^(?:0|[1-9][0-9]*)$/

/** A room id unique to this run. */
function roomId (label: string): string {
  return uniqueRoomId('bb', label)
}

const withoutPresence = (frames: Frame[]): Frame[] => frames.filter((f) => f.type !== 'presence')

function checkGenerated (t: Test, frame: Frame, label: string): void {
  t.ok(typeof frame.id === 'string' && DECIMAL.test(frame.id), `${label}: id is a decimal string (${String(frame.id)})`)
  t.ok(typeof frame.seq === 'number' && Number.isInteger(frame.seq) && frame.seq >= 1, `${label}: seq is a positive integer (${String(frame.seq)})`)
  t.ok(typeof frame.createdAt === 'string' && ISO_8601.test(frame.createdAt) && !Number.isNaN(Date.parse(frame.createdAt)),
    `${label}: createdAt is ISO-8601 (${String(frame.createdAt)})`)
}

/** Asserts a `message` event is exactly the given Message, flat. */
function checkMessageEvent (t: Test, frame: Frame | undefined, expected: Message, label: string): void {
  t.strictSame(pickFields(frame, MESSAGE_KEYS), { type: 'message', ...expected }, `${label}: the full Message, flat`)
}

eachBackend(t, async (t, backend) => {
  const { api, baseUrl } = await startTestServer(t, backend, { env: { WS_RATE: '1000', WS_BURST: '1000' } })
  const alice = await api.user('alice')
  const bob = await api.user('bob')
  const carol = await api.user('carol')

  const open = async (t: Test, user: { token: string }, options: Omit<SocketOptions, 'token'> = {}): Promise<ConnectedSocket> =>
    await connectUntilTeardown(t, baseUrl, user.token, options)

  /** A room created by `owner`; `others` add themselves as members (anyone may, in a public room). */
  const createRoom = async (t: Test, label: string, owner: Account, others: Account[] = [], isPrivate = false): Promise<string> => {
    const id = roomId(label)
    const res = await api.request('POST', '/rooms', { token: owner.token, json: { id, private: isPrivate } })
    t.equal(res.status, 201, `POST /rooms ${id}`)
    for (const u of others) {
      const added = await api.request('POST', `/rooms/${encodeURIComponent(id)}/members`, { token: isPrivate ? owner.token : u.token, json: { userId: u.id } })
      t.equal(added.status, 204, `${u.username} added to ${id}`)
    }
    return id
  }

  const join = async (t: Test, s: TestSocket, room: string, afterSeq?: number): Promise<Frame> => {
    const reply = await s.request(afterSeq === undefined ? { type: 'join', room } : { type: 'join', room, afterSeq })
    t.equal(reply.type, 'joined', `join ${room}: joined (${reply.type === 'error' ? String(reply.code) : ''})`)
    return reply
  }

  /** Sends a message, checks the ack, and returns the Message the contract says it is. */
  const send = async (t: Test, s: ConnectedSocket, room: string, body: string, clientMsgId?: string): Promise<Message> => {
    const frame: Record<string, unknown> = { type: 'message', room, body }
    if (clientMsgId !== undefined) frame.clientMsgId = clientMsgId
    const ack = await s.request(frame)
    t.strictSame(pickFields(ack, ['type', 'room', 'clientMsgId']), { type: 'ack', room, clientMsgId: clientMsgId ?? null }, `ack for ${body.slice(0, 20)}`)
    checkGenerated(t, ack, 'ack')
    return { id: ack.id, room, seq: ack.seq, userId: s.welcome.user.id, username: s.welcome.user.username, body, clientMsgId: clientMsgId ?? null, createdAt: ack.createdAt }
  }

  const history = async (room: string, token = alice.token): Promise<Message[]> => {
    const res = await api.request('GET', `/rooms/${encodeURIComponent(room)}/messages?limit=100`, { token })
    if (res.status !== 200) throw new Error(`history ${room}: ${res.status} ${res.text}`)
    return res.body.messages as Message[]
  }

  const sortOnline = (online: unknown): unknown => Array.isArray(online)
    ? [...online].sort((a, b) => String(a?.userId).localeCompare(String(b?.userId)))
    : online
  const entry = (u: Account): { userId: string, username: string } => ({ userId: u.id, username: u.username })
  const onlineOf = (...users: Account[]): unknown => sortOnline(users.map(entry))

  // ---------------------------------------------------------------------------------------------
  // Upgrade and authentication

  t.test('the token is accepted in each of the three places; welcome comes first', async (t) => {
    for (const via of VIAS) {
      const s = await open(t, alice, { via })
      if (via === 'protocol') t.equal(s.ws.protocol, 'chat.v1', 'protocol variant: the server answers with the subprotocol chat.v1')
      t.equal(s.received[0], s.welcome, `${via}: welcome is the first frame`)
      const expiresAt = new Date((decodeJwt(alice.token).payload.exp as number) * 1000).toISOString()
      t.strictSame(pickFields(s.welcome, ['type', 'user', 'heartbeat', 'expiresAt']), { type: 'welcome', user: { id: alice.id, username: alice.username }, heartbeat: 30, expiresAt },
        `${via}: welcome {user: {id, username}, heartbeat: 30 (HEARTBEAT_TIMEOUT default), expiresAt: the token's exp}`)
      t.match(s.welcome.expiresAt, ISO_8601, `${via}: expiresAt is ISO-8601`)
      t.type(s.welcome.heartbeat, 'number', `${via}: heartbeat is a number`)
      t.strictSame(Object.keys(s.welcome.user ?? {}).sort(), ['id', 'username'], `${via}: welcome.user is {id, username}`)
      t.strictSame(pickFields(await s.request({ type: 'ping' }), ['type']), { type: 'pong' }, `${via}: the socket works`)
    }
  })

  t.test('welcome needs no frame from the client: auth happened in the upgrade', async (t) => {
    const s = await open(t, bob, { via: 'header' })
    t.equal(s.welcome.user?.id, bob.id)
    t.equal(s.welcome.user?.username, bob.username)
  })

  t.test('missing, malformed, badly signed or expired tokens: HTTP 401 and no socket', async (t) => {
    const { header, payload } = decodeJwt(alice.token)
    const now = Math.floor(Date.now() / 1000)
    // Control: a token signed here with the server's key and a future exp is accepted, so the
    // refusals below are about the one thing changed in each.
    const good = signJwt(header, { ...payload, exp: now + 600 })
    for (const via of VIAS) {
      const s = await open(t, { token: good }, { via })
      t.equal(s.welcome.user?.id, alice.id, `${via}: a hand-signed valid token is accepted (control)`)
    }

    const bad: Array<[string, string]> = [
      ['malformed (not a JWT)', 'not-a-jwt'],
      ['malformed (three garbage parts)', 'x.y.z'],
      ['badly signed (wrong key)', signJwt(header, { ...payload, exp: now + 600 }, { secret: 'another-secret-that-is-at-least-32-bytes' })],
      ['tampered payload', `${alice.token.split('.')[0] ?? ''}.${Buffer.from(JSON.stringify({ ...payload, sub: bob.id, username: bob.username })).toString('base64url')}.${alice.token.split('.')[2] ?? ''}`],
      ['unsigned (alg none)', signJwt({ alg: 'none', typ: 'JWT' }, { ...payload, exp: now + 600 }, { unsigned: true })],
      ['expired', signJwt(header, { ...payload, exp: now - 60 })]
    ]
    for (const via of VIAS) {
      t.equal((await refusedUpgrade(baseUrl, { via })).status, 401, `no token at all (${via}): 401`)
      for (const [label, token] of bad) {
        const res = await refusedUpgrade(baseUrl, { token, via })
        t.equal(res.status, 401, `${label} via ${via}: 401`)
      }
    }
    // Present but empty or incomplete.
    t.equal((await refusedUpgrade(baseUrl, { client: { headers: { 'sec-websocket-protocol': 'chat.v1' } } })).status, 401, 'chat.v1 without a bearer protocol: 401')
    t.equal((await refusedUpgrade(baseUrl, { client: { headers: { 'sec-websocket-protocol': 'chat.v1, bearer.' } } })).status, 401, 'empty bearer. protocol: 401')
    t.equal((await refusedUpgrade(baseUrl, { client: { headers: { authorization: 'Bearer ' } } })).status, 401, 'empty Bearer header: 401')
    t.equal((await refusedUpgrade(baseUrl, { client: { headers: { authorization: alice.token } } })).status, 401, 'Authorization without the Bearer scheme: 401')
    for (const via of VIAS) {
      t.equal((await refusedUpgrade(baseUrl, { via, token: '' })).status, 401, `an empty token via ${via}: 401`)
    }
  })

  // ---------------------------------------------------------------------------------------------
  // ping, refs, join, leave

  t.test('ping → pong, with and without ref; ref up to 64 chars is echoed', async (t) => {
    const s = await open(t, alice)
    s.send({ type: 'ping' })
    const pong = await s.next('pong')
    t.equal(pong.type, 'pong')
    t.notOk('ref' in pong && pong.ref !== undefined && pong.ref !== null, 'no ref given: none echoed')
    const ref = 'r'.repeat(64)
    s.send({ type: 'ping', ref })
    t.strictSame(pickFields(await s.next('pong'), ['type', 'ref']), { type: 'pong', ref }, 'a 64-char ref is echoed')
    t.strictSame(withoutPresence(await drainUntilPong(s)), [], 'nothing else was sent')
  })

  t.test('join without afterSeq: joined {room, lastSeq, online, readSeq} with the joiner, no replay', async (t) => {
    const room = await createRoom(t, 'join', alice, [bob])
    const a = await open(t, alice)
    const first = await a.request({ type: 'join', room })
    t.strictSame(pickFields(first, ['type', 'room', 'lastSeq', 'readSeq']), { type: 'joined', room, lastSeq: 0, readSeq: 0 }, 'an empty room: lastSeq 0, readSeq 0')
    t.strictSame(sortOnline(first.online), onlineOf(alice), 'online includes the joining user')
    t.equal(typeof first.ref, 'string', 'ref echoed')

    const sent = [await send(t, a, room, 'one'), await send(t, a, room, 'two')]
    t.strictSame(sent.map((m) => m.seq), [1, 2])

    const b = await open(t, bob)
    const ref = 'join-ref-1'
    b.send({ type: 'join', room, ref })
    const frames: Frame[] = []
    for (;;) {
      const f = await b.next()
      frames.push(f)
      if (f.ref === ref) break
    }
    const joined = frames[frames.length - 1]
    t.strictSame(pickFields(joined, ['type', 'room', 'lastSeq', 'readSeq', 'ref']), { type: 'joined', room, lastSeq: 2, readSeq: 0, ref },
      'lastSeq is the newest seq; bob has read nothing; ref echoed')
    t.strictSame(sortOnline(joined?.online), onlineOf(alice, bob), 'online: everyone joined, joiner included')
    t.strictSame(frames.filter((f) => f.type === 'message'), [], 'no afterSeq: no replay')
    // API.md: storing a message moves its author's read position up to its seq.
    const again = await (await open(t, alice)).request({ type: 'join', room })
    t.strictSame(pickFields(again, ['type', 'room', 'lastSeq', 'readSeq']), { type: 'joined', room, lastSeq: 2, readSeq: 2 }, 'the author has read what it sent')
  })

  t.test('non-members can join a public room (general and a fresh one)', async (t) => {
    const room = await createRoom(t, 'pub', alice)
    const c = await open(t, carol)
    await join(t, c, 'general')
    const joined = await join(t, c, room)
    t.equal(joined.room, room)
    t.equal(joined.lastSeq, 0)
  })

  t.test('join with afterSeq: stored messages with seq > afterSeq oldest first, then joined', async (t) => {
    const room = await createRoom(t, 'replay', alice, [bob])
    const a = await open(t, alice)
    await join(t, a, room)
    const sent: Message[] = []
    for (let i = 1; i <= 5; i++) sent.push(await send(t, a, room, `replay ${i}`, i % 2 === 0 ? `cm-${i}` : undefined))

    for (const afterSeq of [0, 2, 4, 5, 99]) {
      const b = await open(t, bob)
      const ref = `replay-${afterSeq}`
      b.send({ type: 'join', room, afterSeq, ref })
      const frames: Frame[] = []
      for (;;) {
        const f = await b.next()
        if (f.type === 'presence') continue
        frames.push(f)
        if (f.ref === ref) break
      }
      const expected = sent.filter((m) => m.seq > afterSeq)
      t.equal(frames.length, expected.length + 1, `afterSeq ${afterSeq}: ${expected.length} messages then joined`)
      expected.forEach((m, i) => checkMessageEvent(t, frames[i], m, `afterSeq ${afterSeq}, replay #${i}`))
      const joined = frames[frames.length - 1]
      t.strictSame(pickFields(joined, ['type', 'room', 'lastSeq', 'readSeq', 'ref']), { type: 'joined', room, lastSeq: 5, readSeq: 0, ref }, `afterSeq ${afterSeq}: joined last`)
      t.strictSame(sortOnline(joined?.online), onlineOf(alice, bob), `afterSeq ${afterSeq}: online`)
      await b.close()
    }
  })

  t.test('replay and live traffic: each seq once, in order, no gap', async (t) => {
    const room = await createRoom(t, 'race', alice, [bob])
    const a = await open(t, alice)
    await join(t, a, room)
    const total = 30
    const refs = range(1, total).map((i) => `race-${i}`)
    const acks: Frame[] = []
    const acked = (async () => {
      for (const ref of refs) acks.push(await a.next((f) => f.ref === ref, 10000))
    })()
    acked.catch(() => {}) // awaited below; this only keeps an early failure from being unhandled
    refs.forEach((ref, i) => a.send({ type: 'message', room, body: `race ${i + 1}`, ref }))
    // Join while messages are still being sent.
    const deadline = Date.now() + 10000
    while (acks.length < 10 && Date.now() < deadline) await delay(5)
    const b = await open(t, bob)
    const joined = await join(t, b, room, 0)
    await acked
    t.strictSame(acks.map((f) => f.type), refs.map(() => 'ack'), 'every message acked')
    t.strictSame(acks.map((f) => f.seq).sort((x, y) => x - y), range(1, total), 'acked seqs are 1..30')
    t.strictSame(withoutPresence(await drainUntilPong(b)).filter((f) => f.type !== 'message'), [], 'only message events besides presence')
    const seen = b.received.filter((f) => f.type === 'message').map((f) => f.seq)
    t.strictSame(seen, range(1, total), 'the joiner saw seq 1..30 once each, in order (replay, then live)')
    const joinedAt = b.received.indexOf(joined)
    const replayed = b.received.slice(0, joinedAt).filter((f) => f.type === 'message')
    t.ok(replayed.length >= 10, `what was stored before the join was replayed before joined (${replayed.length})`)
    t.ok(joined.lastSeq >= 10 && joined.lastSeq <= total, `joined.lastSeq within bounds (${String(joined.lastSeq)})`)
  })

  t.test('leave → left {room}; then no events from the room, and message/typing are forbidden', async (t) => {
    const room = await createRoom(t, 'leave', alice, [bob])
    const a = await open(t, alice)
    const b = await open(t, bob)
    await join(t, a, room)
    await join(t, b, room)
    const left = await b.request({ type: 'leave', room })
    t.strictSame(pickFields(left, ['type', 'room']), { type: 'left', room }, 'left {room}')
    t.equal(typeof left.ref, 'string', 'ref echoed')
    await send(t, a, room, 'after bob left')
    a.send({ type: 'typing', room, typing: true })
    await drainUntilPong(a) // the message and typing have been handled by the server
    t.strictSame(withoutPresence(await drainUntilPong(b)), [], 'no message or typing after leaving')
    const ref1 = 'after-leave-msg'
    b.send({ type: 'message', room, body: 'x', ref: ref1 })
    checkErrorFrame(t, await b.next((f) => f.ref === ref1), 'forbidden', ref1, 'message after leave')
    const ref2 = 'after-leave-typing'
    b.send({ type: 'typing', room, typing: true, ref: ref2 })
    checkErrorFrame(t, await b.next((f) => f.ref === ref2), 'forbidden', ref2, 'typing after leave')
    t.equal((await history(room)).length, 1, 'the forbidden message was not stored')
  })

  // ---------------------------------------------------------------------------------------------
  // message, ack, fan-out, history

  t.test('message → ack to the sender, a message event to every other joined socket', async (t) => {
    const room = await createRoom(t, 'fan', alice, [bob, carol])
    const a1 = await open(t, alice)
    const a2 = await open(t, alice, { via: 'query' })
    const b = await open(t, bob, { via: 'header' })
    const c = await open(t, carol) // connected, never joins this room
    for (const s of [a1, a2, b]) await join(t, s, room)
    await join(t, c, 'general')

    const ref = 'send-1'
    a1.send({ type: 'message', room, body: 'hello', clientMsgId: 'c-1', ref })
    const ack = await a1.next((f) => f.ref === ref)
    t.strictSame(pickFields(ack, ['type', 'room', 'clientMsgId', 'ref']), { type: 'ack', room, clientMsgId: 'c-1', ref }, 'ack {room, clientMsgId, ref}')
    checkGenerated(t, ack, 'ack')
    t.equal(ack.seq, 1, 'the first message of a room has seq 1')
    const expected: Message = { id: ack.id, room, seq: 1, userId: alice.id, username: alice.username, body: 'hello', clientMsgId: 'c-1', createdAt: ack.createdAt }

    // Durable before the ack: history has it the moment the ack is in.
    t.strictSame(await history(room, bob.token), [expected], 'history has the acked message right after the ack')

    checkMessageEvent(t, await b.next('message'), expected, 'other user')
    checkMessageEvent(t, await a2.next('message'), expected, 'same user, second socket')
    t.strictSame(withoutPresence(await drainUntilPong(a1)), [], 'the sending socket gets no message event')
    t.strictSame(withoutPresence(await drainUntilPong(c)), [], 'a socket not joined in the room gets nothing')
    t.strictSame(withoutPresence(await drainUntilPong(b)), [], 'one event only (other user)')
    t.strictSame(withoutPresence(await drainUntilPong(a2)), [], 'one event only (second socket)')

    // Without clientMsgId: null in the ack, the event and history.
    const plain = await send(t, b, room, 'no client id')
    t.equal(plain.seq, 2, 'seq 2')
    t.equal(plain.clientMsgId, null)
    checkMessageEvent(t, await a1.next('message'), plain, 'clientMsgId null, to the first sender')
    checkMessageEvent(t, await a2.next('message'), plain, 'clientMsgId null, to the second socket')
    t.strictSame(withoutPresence(await drainUntilPong(b)), [], 'the sender (bob) gets no event')
    t.strictSame(await history(room, carol.token), [expected, plain], 'history: exactly what was acked, in seq order')
  })

  t.test('body 4000 chars and clientMsgId 64 chars are accepted and round-trip', async (t) => {
    const room = await createRoom(t, 'limits', alice, [bob])
    const a = await open(t, alice)
    const b = await open(t, bob)
    await join(t, a, room)
    await join(t, b, room)
    const body = 'x'.repeat(3999) + 'é'
    const m1 = await send(t, a, room, body, 'k'.repeat(64))
    checkMessageEvent(t, await b.next('message'), m1, '4000-char body, 64-char clientMsgId')
    const tricky = '😀 "quotes" \\ \n\t <b>html</b> \u2028 你好'
    const m2 = await send(t, a, room, tricky, 'c')
    checkMessageEvent(t, await b.next('message'), m2, 'unicode and escapes, 1-char clientMsgId')
    t.strictSame(await history(room), [m1, m2], 'history')
  })

  t.test('the same clientMsgId again: the original ack, nothing stored or sent twice', async (t) => {
    const room = await createRoom(t, 'dedup', alice, [bob])
    const other = await createRoom(t, 'dedup2', alice, [bob])
    const a1 = await open(t, alice)
    const a2 = await open(t, alice)
    const b = await open(t, bob)
    for (const s of [a1, a2, b]) await join(t, s, room)
    await join(t, a1, other)
    await join(t, b, other)

    const original = await send(t, a1, room, 'once', 'dup-1')
    checkMessageEvent(t, await b.next('message'), original, 'first send')
    checkMessageEvent(t, await a2.next('message'), original, 'first send, second socket')

    const again = async (s: ConnectedSocket, body: string, label: string): Promise<void> => {
      const ref = `again-${label}`
      s.send({ type: 'message', room, body, clientMsgId: 'dup-1', ref })
      const ack = await s.next((f) => f.ref === ref)
      t.strictSame(pickFields(ack, ['type', 'room', 'id', 'seq', 'clientMsgId', 'createdAt', 'ref']),
        { type: 'ack', room, id: original.id, seq: original.seq, clientMsgId: 'dup-1', createdAt: original.createdAt, ref },
        `${label}: the original ack (same id, seq, createdAt), the new ref`)
    }
    await again(a1, 'once', 'same socket')
    await again(a2, 'once', 'second socket of the same user')
    await again(a1, 'a different body', 'different body')

    t.strictSame(withoutPresence(await drainUntilPong(b)), [], 'no second message event')
    t.strictSame(withoutPresence(await drainUntilPong(a2)), [], 'no second message event (second socket)')
    t.strictSame(withoutPresence(await drainUntilPong(a1)), [], 'no event to the sender')

    // The dedup is per user and per room: the same clientMsgId elsewhere is a new message.
    const bobs = await send(t, b, room, 'bob reuses the id', 'dup-1')
    t.not(bobs.id, original.id, 'another user, same clientMsgId: a new message')
    t.equal(bobs.seq, 2, 'seq 2: the resends used no seq')
    checkMessageEvent(t, await a1.next('message'), bobs, 'another user reusing the id')
    const elsewhere = await send(t, a1, other, 'another room', 'dup-1')
    t.not(elsewhere.id, original.id, 'same user, another room: a new message')
    t.equal(elsewhere.seq, 1, 'seq is per room')
    checkMessageEvent(t, await b.next((f) => f.type === 'message' && f.room === other), elsewhere, 'another room')

    t.strictSame(await history(room), [original, bobs], 'history holds the original once (original body), and bob\'s')
    t.strictSame(await history(other), [elsewhere], 'the other room')
  })

  t.test('seq per room starts at 1, no gaps, no duplicates; history is exactly what was acked', async (t) => {
    const r1 = await createRoom(t, 'seq1', alice, [bob])
    const r2 = await createRoom(t, 'seq2', alice, [bob])
    const a = await open(t, alice)
    const b = await open(t, bob)
    for (const s of [a, b]) { await join(t, s, r1); await join(t, s, r2) }
    const sends: Array<Promise<Message>> = []
    for (let i = 0; i < 12; i++) {
      sends.push(send(t, a, r1, `a ${i}`, `a-${i}`))
      sends.push(send(t, b, r1, `b ${i}`))
      sends.push(send(t, a, r2, `r2 ${i}`))
    }
    const messages = await Promise.all(sends)
    for (const room of [r1, r2]) {
      const acked = messages.filter((m) => m.room === room).sort((x, y) => x.seq - y.seq)
      t.strictSame(acked.map((m) => m.seq), range(1, acked.length), `${room}: acked seqs 1..${acked.length}`)
      t.equal(new Set(acked.map((m) => m.id)).size, acked.length, `${room}: distinct ids`)
      t.strictSame(await history(room, bob.token), acked, `${room}: history is exactly what was acked, in seq order`)
    }
    await drainUntilPong(a)
    await drainUntilPong(b)
    const seenByB = b.received.filter((f) => f.type === 'message' && f.room === r1).map((f) => f.seq)
    const alicesSeqs = messages.filter((m) => m.room === r1 && m.userId === alice.id).map((m) => m.seq).sort((x, y) => x - y)
    t.strictSame(seenByB, alicesSeqs, 'bob saw alice\'s r1 messages once each, in seq order')
    const roomInfo = await api.request('GET', `/rooms/${encodeURIComponent(r1)}`, { token: alice.token })
    t.equal(roomInfo.body?.lastSeq, 24, 'Room.lastSeq matches')
  })

  // ---------------------------------------------------------------------------------------------
  // typing

  t.test('typing reaches the others, never the typist, has no reply and is never stored', async (t) => {
    const room = await createRoom(t, 'typing', alice, [bob, carol])
    const a = await open(t, alice)
    const b = await open(t, bob)
    const c = await open(t, carol)
    for (const s of [a, b, c]) await join(t, s, room)
    await drainUntilPong(a); await drainUntilPong(b); await drainUntilPong(c)

    a.send({ type: 'typing', room, typing: true, ref: 'typing-ref' })
    const want = { type: 'typing', room, userId: alice.id, username: alice.username, typing: true }
    t.strictSame(pickFields(await b.next('typing'), Object.keys(want)), want, 'bob gets typing true')
    t.strictSame(pickFields(await c.next('typing'), Object.keys(want)), want, 'carol gets typing true')
    t.strictSame(withoutPresence(await drainUntilPong(a)), [], 'the typist gets neither typing nor any reply to its ref')

    a.send({ type: 'typing', room, typing: false })
    t.strictSame(pickFields(await b.next('typing'), Object.keys(want)), { ...want, typing: false }, 'bob gets typing false')
    t.strictSame(pickFields(await c.next('typing'), Object.keys(want)), { ...want, typing: false }, 'carol gets typing false')
    t.strictSame(withoutPresence(await drainUntilPong(a)), [], 'the typist gets nothing')
    t.strictSame(withoutPresence(await drainUntilPong(b)), [], 'bob got one typing frame per change')

    t.strictSame(await history(room), [], 'typing is not stored')
    const info = await api.request('GET', `/rooms/${encodeURIComponent(room)}`, { token: alice.token })
    t.equal(info.body?.lastSeq, 0, 'no seq used')
    const b2 = await open(t, bob)
    const replayed = await b2.request({ type: 'join', room, afterSeq: 0 })
    t.equal(replayed.type, 'joined', 'a replay from 0 has nothing before joined')
    t.strictSame(withoutPresence(b2.received.filter((f) => f !== b2.welcome && f !== replayed)), [], 'no typing or message replayed')
  })

  t.test('a typing start not refreshed within 5 s is followed by typing false from the server', async (t) => {
    const room = await createRoom(t, 'typing5', alice, [bob])
    const a = await open(t, alice)
    const b = await open(t, bob)
    await join(t, a, room)
    await join(t, b, room)
    a.send({ type: 'typing', room, typing: true })
    const start = await b.next('typing')
    const started = Date.now()
    t.equal(start.typing, true)
    // Keep alice's socket busy with pings (not typing) so only the typing state can time out.
    const keepAlive = setInterval(() => a.send({ type: 'ping' }), 1000)
    t.teardown(() => clearInterval(keepAlive))
    const stop = await nextOrNull(b, (f) => f.type === 'typing', 8000)
    const elapsed = Date.now() - started
    clearInterval(keepAlive)
    t.strictSame(stop === null ? null : pickFields(stop, ['type', 'room', 'userId', 'username', 'typing']),
      { type: 'typing', room, userId: alice.id, username: alice.username, typing: false }, 'typing false from the server')
    if (stop !== null) t.ok(elapsed >= 4000 && elapsed <= 7500, `about 5 s after the start (${elapsed} ms)`)
  })

  // ---------------------------------------------------------------------------------------------
  // presence events

  t.test('presence: first socket joined → online; last socket left or closed → offline', async (t) => {
    const room = await createRoom(t, 'presence', alice, [bob, carol])
    const c = await open(t, carol)
    await join(t, c, room)
    const forBob = (status: string): unknown => ({ type: 'presence', room, userId: bob.id, username: bob.username, status })
    const keys = ['type', 'room', 'userId', 'username', 'status']
    const isBob = (f: Frame): boolean => f.type === 'presence' && f.userId === bob.id
    const bobFrames = (frames: Frame[]): Frame[] => frames.filter(isBob)
    const expectPresence = async (status: string, label: string): Promise<void> => {
      const frame = await nextOrNull(c, isBob, 2000)
      t.strictSame(frame === null ? null : pickFields(frame, keys), forBob(status), label)
    }

    const b1 = await open(t, bob)
    const j1 = await join(t, b1, room)
    t.strictSame(sortOnline(j1.online), onlineOf(bob, carol), 'joined.online')
    await expectPresence('online', 'bob\'s first socket joined: presence online')

    const b2 = await open(t, bob)
    await join(t, b2, room)
    await b2.request({ type: 'leave', room })
    t.strictSame(bobFrames(await drainUntilPong(c)), [], 'a second socket joining and leaving: no presence event')
    await b2.request({ type: 'join', room })
    await b1.request({ type: 'leave', room })
    t.strictSame(bobFrames(await drainUntilPong(c)), [], 'one of two sockets leaving: no presence event')

    await b2.close()
    await expectPresence('offline', 'the last socket closed: presence offline')

    const b3 = await open(t, bob)
    await join(t, b3, room)
    await expectPresence('online', 'back online')
    await b3.request({ type: 'leave', room })
    await expectPresence('offline', 'the last socket left: presence offline')

    const c2 = await open(t, carol)
    const j2 = await join(t, c2, room)
    t.strictSame(sortOnline(j2.online), onlineOf(carol), 'joined.online no longer lists bob')
  })

  t.test('GET /rooms/:id/presence and GET /users/:id/presence follow the sockets', async (t) => {
    const dave = await api.user('dave')
    const room = await createRoom(t, 'presence-rest', alice, [dave])
    const roomPresence = async (): Promise<unknown> => {
      const res = await api.request('GET', `/rooms/${encodeURIComponent(room)}/presence`, { token: alice.token })
      t.equal(res.status, 200, 'GET /rooms/:id/presence: 200')
      return { ...res.body, online: sortOnline(res.body?.online ?? []) }
    }
    const userPresence = async (): Promise<Record<string, unknown>> => {
      const res = await api.request('GET', `/users/${dave.id}/presence`, { token: alice.token })
      t.equal(res.status, 200, 'GET /users/:id/presence: 200')
      return res.body
    }
    t.strictSame(await userPresence(), { userId: dave.id, status: 'offline', lastSeenAt: null }, 'never connected: offline, lastSeenAt null')

    const d = await open(t, dave)
    const online = await userPresence()
    t.equal(online.status, 'online', 'a socket open: online')
    t.ok(typeof online.lastSeenAt === 'string' && ISO_8601.test(online.lastSeenAt), `lastSeenAt is ISO-8601 (${String(online.lastSeenAt)})`)
    t.strictSame(await roomPresence(), { room, online: [] }, 'not joined: not in the room\'s list')

    const a = await open(t, alice)
    await join(t, a, room)
    await join(t, d, room)
    t.strictSame(await roomPresence(), { room, online: onlineOf(alice, dave) }, 'both joined: both listed')

    const closedAt = Date.now()
    await d.close()
    t.strictSame(await roomPresence(), { room, online: onlineOf(alice) }, 'dave\'s socket closed: only alice listed')
    let offline = await userPresence()
    for (let i = 0; i < 50 && (offline.status !== 'offline' || offline.lastSeenAt === null); i++) {
      await delay(100)
      offline = await userPresence()
    }
    t.equal(offline.status, 'offline', 'the last socket closed: offline')
    const seen = typeof offline.lastSeenAt === 'string' ? Date.parse(offline.lastSeenAt) : NaN
    t.ok(seen >= closedAt - 1000 && seen <= Date.now() + 1000, `lastSeenAt is when the socket went (${String(offline.lastSeenAt)})`)
  })

  // ---------------------------------------------------------------------------------------------
  // errors

  t.test('bad_request for every malformed frame; the socket stays open after each', async (t) => {
    const room = await createRoom(t, 'bad', alice)
    const s = await open(t, alice)
    await join(t, s, room)

    const alive = async (label: string): Promise<void> => {
      const pong = await s.request({ type: 'ping' })
      t.equal(pong.type, 'pong', `${label}: still open (ping → pong)`)
    }

    // Frames that cannot carry a usable ref.
    const raw: Array<[string, string | Buffer]> = [
      ['not JSON', 'not json at all'],
      ['truncated JSON', '{"type":"ping"'],
      ['a JSON array', '[{"type":"ping"}]'],
      ['a JSON string', '"ping"'],
      ['JSON null', 'null'],
      ['a JSON number', '42'],
      ['a binary frame', Buffer.from(JSON.stringify({ type: 'ping' }))]
    ]
    for (const [label, frame] of raw) {
      s.send(frame)
      const reply = await s.next((f) => f.type === 'error' || f.type === 'pong')
      checkErrorFrame(t, reply, 'bad_request', undefined, label)
      await alive(label)
    }

    const long = (n: number): string => 'y'.repeat(n)
    const cases: Array<[string, Record<string, unknown>]> = [
      ['no type', {}],
      ['unknown type', { type: 'dance' }],
      ['type not a string', { type: 7 }],
      ['message: body empty', { type: 'message', room, body: '' }],
      ['message: body 4001 chars', { type: 'message', room, body: long(4001) }],
      ['message: body missing', { type: 'message', room }],
      ['message: body not a string', { type: 'message', room, body: 42 }],
      ['message: clientMsgId 65 chars', { type: 'message', room, body: 'ok', clientMsgId: long(65) }],
      ['message: clientMsgId empty', { type: 'message', room, body: 'ok', clientMsgId: '' }],
      ['message: clientMsgId not a string', { type: 'message', room, body: 'ok', clientMsgId: 5 }],
      ['message: room missing', { type: 'message', body: 'ok' }],
      ['message: room not a string', { type: 'message', room: 12, body: 'ok' }],
      ['join: room missing', { type: 'join' }],
      ['join: room not a string', { type: 'join', room: ['general'] }],
      ['join: afterSeq not a number', { type: 'join', room, afterSeq: 'abc' }],
      ['leave: room missing', { type: 'leave' }],
      ['typing: room missing', { type: 'typing', typing: true }],
      ['typing: typing not boolean', { type: 'typing', room, typing: 'yes' }],
      ['typing: typing as 1', { type: 'typing', room, typing: 1 }],
      ['typing: typing missing', { type: 'typing', room }]
    ]
    let n = 0
    for (const [label, frame] of cases) {
      const ref = `bad-${++n}`
      s.send({ ...frame, ref })
      checkErrorFrame(t, await s.next((f) => f.ref === ref), 'bad_request', ref, label)
      await alive(label)
    }

    // A ref that is itself invalid: bad_request (whatever ref it carries back).
    for (const [label, ref] of [['ref 65 chars', long(65)], ['ref not a string', 17]] as const) {
      s.send({ type: 'ping', ref })
      const reply = await s.next((f) => f.type === 'error' || f.type === 'pong')
      checkErrorFrame(t, reply, 'bad_request', undefined, label)
      await alive(label)
    }

    t.strictSame(await history(room), [], 'nothing was stored')
    const ok = await send(t, s, room, 'still works', 'after-errors')
    t.equal(ok.seq, 1, 'a valid message after all the errors gets seq 1')
  })

  t.test('forbidden: message or typing to a room the socket has not joined', async (t) => {
    const room = await createRoom(t, 'forbid', alice, [bob])
    const a = await open(t, alice)
    const b = await open(t, bob)
    await join(t, b, room)
    for (const [label, frame] of [
      ['message, member but not joined', { type: 'message', room, body: 'hi', clientMsgId: 'f-1' }],
      ['typing, member but not joined', { type: 'typing', room, typing: true }],
      ['message to general, not joined', { type: 'message', room: 'general', body: 'hi' }],
      ['typing to general, not joined', { type: 'typing', room: 'general', typing: false }]
    ] as const) {
      const reply = await a.request(frame)
      checkErrorFrame(t, reply, 'forbidden', reply.ref, label)
      t.equal((await a.request({ type: 'ping' })).type, 'pong', `${label}: still open`)
    }
    t.strictSame(withoutPresence(await drainUntilPong(b)), [], 'nothing reached the joined socket')
    t.strictSame(await history(room), [], 'nothing stored')
    // Joined by another socket of the same user does not count: joins are per socket.
    const a2 = await open(t, alice)
    await join(t, a2, room)
    checkErrorFrame(t, await a.request({ type: 'message', room, body: 'hi' }), 'forbidden', undefined, 'joined on another socket only')
  })

  t.test('join: unknown room → not_found; a private room needs membership', async (t) => {
    const s = await open(t, bob)
    const ref = 'unknown-room'
    s.send({ type: 'join', room: roomId('nope'), ref })
    checkErrorFrame(t, await s.next((f) => f.ref === ref), 'not_found', ref, 'unknown room')
    t.equal((await s.request({ type: 'ping' })).type, 'pong', 'still open')

    const secret = await createRoom(t, 'private', alice, [], true)
    const a = await open(t, alice)
    await join(t, a, secret)
    await send(t, a, secret, 'for members only')
    const denied = await s.request({ type: 'join', room: secret, afterSeq: 0 })
    t.equal(denied.type, 'error', 'a non-member cannot join a private room')
    t.ok(denied.code === 'forbidden' || denied.code === 'not_found', `forbidden or not_found (${String(denied.code)})`)
    t.strictSame(s.received.filter((f) => f.type === 'message'), [], 'nothing replayed to the non-member')
    checkErrorFrame(t, await s.request({ type: 'message', room: secret, body: 'let me in' }), 'forbidden', undefined, 'message to it')
    t.strictSame(withoutPresence(await drainUntilPong(a)), [], 'members see nothing of it')

    t.equal((await api.request('POST', `/rooms/${encodeURIComponent(secret)}/members`, { token: alice.token, json: { userId: bob.id } })).status, 204)
    const joined = await join(t, s, secret, 0)
    t.equal(joined.lastSeq, 1, 'once a member: joinable')
    t.equal(s.received.filter((f) => f.type === 'message').length, 1, 'and the history is replayed')
  })

  // ---------------------------------------------------------------------------------------------
  // close codes (1001 on shutdown is tested elsewhere; flooding in socket-limits.test.ts)

  t.test('a frame larger than 64 KiB closes the socket with 1009; 64 KiB exactly does not', async (t) => {
    const room = await createRoom(t, 'big', alice)
    const s = await open(t, alice)
    await join(t, s, room)
    const frameOf = (bytes: number, ref: string): string => {
      const base = JSON.stringify({ type: 'message', room, ref, body: '' })
      return JSON.stringify({ type: 'message', room, ref, body: 'z'.repeat(bytes - Buffer.byteLength(base)) })
    }
    const atLimit = frameOf(64 * 1024, 'at-limit')
    t.equal(Buffer.byteLength(atLimit), 65536)
    s.send(atLimit)
    checkErrorFrame(t, await s.next((f) => f.ref === 'at-limit'), 'bad_request', 'at-limit', '64 KiB frame: only the body is too long')
    t.equal((await s.request({ type: 'ping' })).type, 'pong', 'still open')

    const over = frameOf(64 * 1024 + 1, 'over')
    t.equal(Buffer.byteLength(over), 65537)
    s.send(over)
    const closed = await Promise.race([s.closed, delay(5000).then(() => null)])
    t.equal(closed?.code, 1009, 'closed with 1009')
    t.strictSame(s.received.filter((f) => f.ref === 'over'), [], 'the frame was not served')

    // A binary frame over the limit too.
    const s2 = await open(t, alice)
    s2.send(Buffer.alloc(64 * 1024 + 100, 0x61))
    const closed2 = await Promise.race([s2.closed, delay(5000).then(() => null)])
    t.equal(closed2?.code, 1009, 'binary frame over 64 KiB: 1009')
    t.strictSame(await history(room), [], 'nothing stored')
  })

  t.test('a token that expires while connected: close 1008', async (t) => {
    const { header, payload } = decodeJwt(alice.token)
    const exp = Math.floor(Date.now() / 1000) + 2
    const token = signJwt(header, { ...payload, exp })
    const s = await open(t, { token })
    t.equal(s.welcome.user?.id, alice.id, 'accepted while valid')
    t.equal((await s.request({ type: 'ping' })).type, 'pong', 'works while valid')
    // Keep talking, so a server that checks expiry on the next frame and one that checks on a
    // timer both get their chance.
    const timer = setInterval(() => { if (s.ws.readyState === s.ws.OPEN) s.send({ type: 'ping' }) }, 250)
    t.teardown(() => clearInterval(timer))
    const closed = await Promise.race([s.closed, delay(exp * 1000 - Date.now() + 4000).then(() => null)])
    const at = Date.now()
    clearInterval(timer)
    t.equal(closed?.code, 1008, 'closed with 1008 (policy)')
    t.ok(at >= exp * 1000 - 1000, `not before the token expired (${at - exp * 1000} ms after exp)`)
  })

  t.test('auth with a later token of the same user: authed {expiresAt}, and the socket outlives its first token', async (t) => {
    const { header, payload } = decodeJwt(alice.token)
    const exp = Math.floor(Date.now() / 1000) + 2
    const s = await open(t, { token: signJwt(header, { ...payload, exp }) })
    t.equal(s.welcome.expiresAt, new Date(exp * 1000).toISOString(), 'welcome.expiresAt is the token\'s exp')
    const later = exp + 600
    const ref = 'auth-later'
    s.send({ type: 'auth', token: signJwt(header, { ...payload, exp: later }), ref })
    const authed = await s.next((f) => f.ref === ref)
    t.strictSame(pickFields(authed, ['type', 'expiresAt', 'ref']), { type: 'authed', expiresAt: new Date(later * 1000).toISOString(), ref }, 'authed with the new expiry')
    await delay(exp * 1000 - Date.now() + 1500)
    t.equal((await s.request({ type: 'ping' })).type, 'pong', 'alive past the first token\'s expiry')
  })

  t.test('auth that cannot extend: error unauthorized with the ref; the socket stays open', async (t) => {
    const { header, payload } = decodeJwt(alice.token)
    const now = Math.floor(Date.now() / 1000)
    const s = await open(t, alice)
    const refused: Array<[string, string]> = [
      ['malformed', 'not-a-jwt'],
      ['another user\'s token', bob.token],
      ['expired', signJwt(header, { ...payload, exp: now - 60 })],
      ['badly signed', signJwt(header, { ...payload, exp: now + 600 }, { secret: 'another-secret-that-is-at-least-32-bytes' })]
    ]
    for (const [label, token] of refused) {
      const ref = `auth-${label}`
      s.send({ type: 'auth', token, ref })
      checkErrorFrame(t, await s.next((f) => f.ref === ref), 'unauthorized', ref, label)
    }
    s.send({ type: 'auth', ref: 'auth-no-token' })
    checkErrorFrame(t, await s.next((f) => f.ref === 'auth-no-token'), 'bad_request', 'auth-no-token', 'no token field')
    t.equal((await s.request({ type: 'ping' })).type, 'pong', 'the socket stays open')
    // Its own token again: the expiry the refusals left is the first token's.
    t.strictSame(pickFields(await s.request({ type: 'auth', token: alice.token }), ['type', 'expiresAt']),
      { type: 'authed', expiresAt: new Date((payload.exp as number) * 1000).toISOString() }, 'the expiry is unchanged')
  })
})
