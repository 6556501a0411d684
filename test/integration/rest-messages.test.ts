// POST /rooms/:id/messages (API.md v1.1): the socket's message path over REST.
//
// What is fixed: `{body, clientMsgId?}` with the socket frame's limits and nothing else; `201
// Message` once stored, published to every socket joined to the room (the author's own sockets
// too: over REST there is no sending socket); the same clientMsgId from the same user in the same
// room again, over REST or the socket: `200` with the original Message, nothing stored or sent
// twice. No join needed; a private room takes membership (403); unknown room 404; a store that
// cannot take it now: 503 with Retry-After; more than WS_BURST at once (WS_RATE/s sustained) per
// user: 429 with Retry-After.
import t, { type Test } from 'tap'
import { assertError } from '../helpers/assertions.js'
import { asMessage, connectUntilTeardown, createRoom, readWholeHistory, uniqueRoomId, type Account, type Message } from '../helpers/chat.js'
import type { ApiClient, ApiResponse } from '../helpers/http.js'
import { eachBackend, startTestServer } from '../helpers/server.js'
import { barrier, messageEvents, receivedAcks, type TestSocket } from '../helpers/socket.js'

/** Requests one user may make at once in the main server (each test uses fresh users). */
const BURST = 25
const MESSAGE_KEYS = ['body', 'clientMsgId', 'createdAt', 'id', 'room', 'seq', 'userId', 'username']

function isIsoDate (value: unknown): boolean {
  return typeof value === 'string' && !Number.isNaN(Date.parse(value)) && new Date(value).toISOString() === value
}

/** Asserts a Message: exactly the contract's fields, the expected values, an id and an ISO createdAt. */
function isMessage (t: Test, message: any, expected: Omit<Message, 'id' | 'createdAt' | 'seq'> & { seq?: number }, what: string): void {
  t.strictSame(Object.keys(message ?? {}).sort(), MESSAGE_KEYS, `${what}: exactly the Message fields`)
  t.match(message?.id, /^[1-9][0-9]*$/, `${what}: id is a decimal string`)
  t.ok(isIsoDate(message?.createdAt), `${what}: createdAt is ISO-8601`)
  t.type(message?.seq, 'number', `${what}: seq is a number`)
  const { id: _id, createdAt: _createdAt, ...rest } = message ?? {}
  if (expected.seq === undefined) delete rest.seq
  t.strictSame(rest, expected, `${what}: values`)
}

function post (api: ApiClient, user: Account, room: string, json: unknown): Promise<ApiResponse> {
  return api.request('POST', `/rooms/${room}/messages`, { token: user.token, json })
}

async function joined (t: Test, baseUrl: string, user: Account, room: string): Promise<TestSocket> {
  const s = await connectUntilTeardown(t, baseUrl, user.token)
  const reply = await s.request({ type: 'join', room })
  t.equal(reply.type, 'joined', `${user.username} joined ${room}`)
  return s
}

eachBackend(t, async (t, backend) => {
  const { api, baseUrl } = await startTestServer(t, backend, { env: { WS_RATE: '1', WS_BURST: String(BURST) } })

  t.test('201 Message; every socket in the room gets it, the author\'s too; history has it', async (t) => {
    const alice = await api.user('alice')
    const bob = await api.user('bob')
    const room = uniqueRoomId('rest', 'send')
    await createRoom(api, alice, room)
    const aliceSocket = await joined(t, baseUrl, alice, room)
    const bobSocket = await joined(t, baseUrl, bob, room)

    const res = await post(api, alice, room, { body: 'hello over REST', clientMsgId: 'r-1' })
    t.equal(res.status, 201)
    isMessage(t, res.body, { room, seq: 1, userId: alice.id, username: alice.username, body: 'hello over REST', clientMsgId: 'r-1' }, 'response')
    for (const [name, s] of [['bob', bobSocket], ['the author', aliceSocket]] as const) {
      const event = await s.next((f) => f.type === 'message' && f.room === room)
      t.strictSame(asMessage(event), res.body, `${name}'s socket gets the Message as a message event`)
    }
    await barrier(aliceSocket)
    t.equal(receivedAcks(aliceSocket).length, 0, 'the author\'s socket gets no ack: it did not send the message')
    t.strictSame(await readWholeHistory(api, bob.token, room), [res.body], 'history returns exactly it')

    const plain = await post(api, alice, room, { body: 'no key' })
    t.equal(plain.status, 201)
    isMessage(t, plain.body, { room, seq: 2, userId: alice.id, username: alice.username, body: 'no key', clientMsgId: null }, 'without clientMsgId')
    const again = await post(api, alice, room, { body: 'no key' })
    t.equal(again.status, 201, 'without clientMsgId nothing is deduplicated')
    t.equal(again.body.seq, 3)
    const longest = await post(api, alice, room, { body: 'x'.repeat(4000), clientMsgId: 'k'.repeat(64) })
    t.equal(longest.status, 201, 'a 4000-char body with a 64-char clientMsgId is taken')
  })

  t.test('20 concurrent repeats of one clientMsgId: one 201, the rest 200 with the stored Message', async (t) => {
    const alice = await api.user('alice')
    const bob = await api.user('bob')
    const room = uniqueRoomId('rest', 'idem')
    await createRoom(api, alice, room)
    const sockets = [await joined(t, baseUrl, alice, room), await joined(t, baseUrl, bob, room)]

    const results = await Promise.all(Array.from({ length: 20 }, async (_, i) => await post(api, alice, room, { body: `attempt ${i}`, clientMsgId: 'same' })))
    const created = results.filter((r) => r.status === 201)
    t.equal(created.length, 1, 'exactly one 201')
    t.equal(results.filter((r) => r.status === 200).length, 19, 'the others 200')
    const stored = created[0]?.body
    t.match(stored?.body, /^attempt \d+$/, 'the stored body is one of the attempts')
    for (const r of results) t.strictSame(r.body, stored, `every answer is the stored Message (${String(r.body?.body)})`)
    t.strictSame(await readWholeHistory(api, alice.token, room), [stored], 'one row in history')
    for (const s of sockets) {
      await barrier(s)
      t.strictSame(messageEvents(s, room).map(asMessage), [stored], 'one message event per socket')
    }

    // Another user's identical key is another message; so is the same key in another room.
    const bobs = await post(api, bob, room, { body: 'bob', clientMsgId: 'same' })
    t.equal(bobs.status, 201, 'the key is per user')
    const otherRoom = uniqueRoomId('rest', 'idem2')
    await createRoom(api, alice, otherRoom)
    t.equal((await post(api, alice, otherRoom, { body: 'elsewhere', clientMsgId: 'same' })).status, 201, 'and per room')
  })

  t.test('REST and the socket share clientMsgIds', async (t) => {
    const alice = await api.user('alice')
    const bob = await api.user('bob')
    const room = uniqueRoomId('rest', 'mixed')
    await createRoom(api, alice, room)
    const aliceSocket = await joined(t, baseUrl, alice, room)
    const bobSocket = await joined(t, baseUrl, bob, room)

    const rest = await post(api, alice, room, { body: 'first over REST', clientMsgId: 'm-1' })
    t.equal(rest.status, 201)
    const ack = await aliceSocket.request({ type: 'message', room, body: 'then the socket', clientMsgId: 'm-1' })
    t.match(ack, { type: 'ack', room, id: rest.body.id, seq: rest.body.seq, clientMsgId: 'm-1', createdAt: rest.body.createdAt }, 'the socket repeat gets the REST message\'s ack')

    const sent = await aliceSocket.request({ type: 'message', room, body: 'first over the socket', clientMsgId: 'm-2' })
    t.equal(sent.type, 'ack')
    const repeat = await post(api, alice, room, { body: 'then REST', clientMsgId: 'm-2' })
    t.equal(repeat.status, 200, 'the REST repeat of a socket message: 200')
    isMessage(t, repeat.body, { room, seq: sent.seq, userId: alice.id, username: alice.username, body: 'first over the socket', clientMsgId: 'm-2' }, 'the original Message')
    t.equal(repeat.body.id, sent.id)
    t.equal(repeat.body.createdAt, sent.createdAt)

    await barrier(bobSocket)
    t.strictSame(messageEvents(bobSocket, room).map((f) => f.seq), [1, 2], 'bob got each message once')
    await barrier(aliceSocket)
    t.strictSame(messageEvents(aliceSocket, room).map((f) => f.seq), [1], 'the author\'s socket got the REST message, and an ack for its own')
    t.equal((await readWholeHistory(api, alice.token, room)).length, 2, 'two rows in history')
  })

  t.test('rooms: public without joining, private only for members, unknown 404', async (t) => {
    const owner = await api.user('owner')
    const stranger = await api.user('stranger')
    const open = uniqueRoomId('rest', 'public')
    const closed = uniqueRoomId('rest', 'private')
    await createRoom(api, owner, open)
    await createRoom(api, owner, closed, true)

    const res = await post(api, stranger, open, { body: 'drive-by' })
    t.equal(res.status, 201, 'a public room takes messages from a non-member')
    isMessage(t, res.body, { room: open, seq: 1, userId: stranger.id, username: stranger.username, body: 'drive-by', clientMsgId: null }, 'stored')
    t.equal((await post(api, stranger, 'general', { body: 'hello general' })).status, 201, 'general too')

    assertError(t, await post(api, stranger, closed, { body: 'let me in', clientMsgId: 'p-1' }), 403, 'forbidden', 'private, not a member')
    t.equal((await post(api, owner, closed, { body: 'members only' })).status, 201, 'a member may send to the private room')
    t.strictSame((await readWholeHistory(api, owner.token, closed)).map((m) => m.body), ['members only'], 'the refused message was not stored')

    assertError(t, await post(api, stranger, 'no-such-room', { body: 'anyone?' }), 404, 'not_found', 'unknown room')
    assertError(t, await post(api, stranger, 'bad%20id', { body: 'x' }), 400, 'bad_request', 'a room id outside the pattern')
    assertError(t, await api.request('POST', `/rooms/${open}/messages`, { json: { body: 'x' } }), 401, 'unauthorized', 'no token')
  })

  t.test('bad bodies: 400 bad_request, nothing stored', async (t) => {
    const alice = await api.user('alice')
    const room = uniqueRoomId('rest', 'bad')
    await createRoom(api, alice, room)
    const bodies: Record<string, unknown> = {
      'empty body': { body: '' },
      'body too long': { body: 'x'.repeat(4001) },
      'body missing': { clientMsgId: 'c' },
      'body not a string': { body: 42 },
      'an extra field': { body: 'hi', room },
      'empty clientMsgId': { body: 'hi', clientMsgId: '' },
      'clientMsgId too long': { body: 'hi', clientMsgId: 'k'.repeat(65) },
      'clientMsgId null': { body: 'hi', clientMsgId: null },
      'not an object': ['hi']
    }
    for (const [what, json] of Object.entries(bodies)) assertError(t, await post(api, alice, room, json), 400, 'bad_request', what)
    assertError(t, await api.request('POST', `/rooms/${room}/messages`, { token: alice.token, raw: '{"body":', contentType: 'application/json' }), 400, 'bad_request', 'malformed JSON')
    assertError(t, await api.request('POST', `/rooms/${room}/messages`, { token: alice.token }), 400, 'bad_request', 'no body at all')
    t.strictSame(await readWholeHistory(api, alice.token, room), [], 'nothing stored')
  })

  t.test(`more than ${BURST} at once from one user: 429 rate_limited with Retry-After`, async (t) => {
    const alice = await api.user('alice')
    const bob = await api.user('bob')
    const room = uniqueRoomId('rest', 'flood')
    await createRoom(api, alice, room)
    const results = await Promise.all(Array.from({ length: BURST + 10 }, async (_, i) => await post(api, alice, room, { body: `flood ${i}` })))
    const limited = results.filter((r) => r.status === 429)
    // WS_RATE is 1/s: a token or two may come back while the requests are served.
    t.ok(limited.length >= 5, `at least 5 of ${BURST + 10} limited (${limited.length})`)
    t.equal(results.filter((r) => r.status === 201).length, BURST + 10 - limited.length, 'the rest stored')
    for (const r of limited.slice(0, 3)) {
      assertError(t, r, 429, 'rate_limited', 'beyond the burst')
      t.equal(r.headers.get('retry-after'), '1', 'Retry-After: a token is back within a second')
    }
    t.equal((await readWholeHistory(api, alice.token, room)).length, BURST + 10 - limited.length, 'limited requests stored nothing')
    t.equal((await post(api, bob, room, { body: 'another user' })).status, 201, 'another user has a bucket of their own')
  })
})

eachBackend(t, async (t, backend) => {
  // One message may wait in the queue, for a second, before its group commit is written.
  const { api, baseUrl } = await startTestServer(t, backend, { env: { WRITE_QUEUE_LIMIT: '1', WRITE_MAX_DELAY_MS: '1000' } })

  t.test('a store that cannot take the message now: 503 unavailable with Retry-After; a retry with the same clientMsgId stores it once', async (t) => {
    const alice = await api.user('alice')
    const room = uniqueRoomId('rest', 'full')
    await createRoom(api, alice, room)
    const watcher = await joined(t, baseUrl, alice, room)

    const results = await Promise.all(['q-1', 'q-2', 'q-3', 'q-4'].map(async (clientMsgId) => await post(api, alice, room, { body: clientMsgId, clientMsgId })))
    const stored = results.filter((r) => r.status === 201)
    const refused = results.filter((r) => r.status === 503)
    t.equal(stored.length, 1, 'one fits in the queue')
    t.equal(refused.length, 3, 'the others are refused')
    for (const r of refused) {
      assertError(t, r, 503, 'unavailable', 'queue full')
      t.equal(r.headers.get('retry-after'), '1', 'Retry-After')
    }
    const retried = results.findIndex((r) => r.status === 503)
    const clientMsgId = `q-${retried + 1}`
    const retry = await post(api, alice, room, { body: clientMsgId, clientMsgId })
    t.equal(retry.status, 201, 'the retry is stored')
    t.equal((await post(api, alice, room, { body: clientMsgId, clientMsgId })).status, 200, 'and only once')
    const history = await readWholeHistory(api, alice.token, room)
    t.strictSame(history.map((m) => m.clientMsgId), [stored[0]?.body.clientMsgId, clientMsgId], 'history: exactly what was answered 201')
    await barrier(watcher)
    t.strictSame(messageEvents(watcher, room).map(asMessage), history, 'refused messages were not published')
  })
})
