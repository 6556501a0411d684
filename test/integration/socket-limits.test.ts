import type { KyselyPlugin, RootOperationNode } from 'kysely'
import t, { type Test } from 'tap'
import { createDatabase } from '../../db/create-db.js'
import type WebSocket from 'ws'
import { startTestServer } from '../helpers/server.js'
import { backends } from '../helpers/backends.js'
import { delay, HIGH_FRAME_RATE } from '../helpers/chat.js'
import { connect, openSocket, type TestSocket } from '../helpers/socket.js'
import { decodeJwt, signJwt } from '../helpers/tokens.js'

// Limits are about the socket, not the database: the embedded backend is enough here.
const [backend] = backends().run
if (backend === undefined) throw new Error('no backend')

function frameOfSize (bytes: number): string {
  const prefix = '{"type":"ping","pad":"'
  return `${prefix}${'x'.repeat(bytes - prefix.length - 2)}"}`
}

async function closeAll (sockets: TestSocket[]): Promise<void> {
  await Promise.all(sockets.map(async (s) => await s.close()))
}

/** A server (with `env`), a fresh user and one socket of it, closed at teardown. */
const oneSocket = async (t: Test, env?: Record<string, string>): Promise<{ baseUrl: string, user: { token: string }, socket: TestSocket }> => {
  const { baseUrl, api } = await startTestServer(t, backend, env === undefined ? {} : { env })
  const user = await api.user()
  const socket = await connect(baseUrl, user.token)
  t.teardown(async () => await socket.close())
  return { baseUrl, user, socket }
}

t.test('frame size: 64 KiB is served, one byte more closes with 1009, beyond uWS limit 1006', async (t) => {
  const { baseUrl, user, socket } = await oneSocket(t)

  const exact = frameOfSize(64 * 1024)
  t.equal(Buffer.byteLength(exact), 65536)
  socket.send(exact)
  t.match(await socket.next(), { type: 'pong' }, 'a 64 KiB frame is a frame like any other')

  socket.send(frameOfSize(64 * 1024 + 1))
  t.same(await socket.closed, { code: 1009, reason: 'frame larger than 65536 bytes' })

  const huge = await connect(baseUrl, user.token)
  huge.send(frameOfSize(1024 * 1024 + 1))
  t.equal((await huge.closed).code, 1006, 'above uWS\'s own limit the connection is dropped without a close frame')
})

t.test('flooding past the rate limit: rate_limited errors with refs, then 1008', async (t) => {
  const { socket } = await oneSocket(t, { WS_RATE: '5', WS_BURST: '5' })
  for (let i = 0; i < 40; i++) socket.send({ type: 'ping', ref: `p${i}` })
  const closed = await socket.closed
  t.same(closed, { code: 1008, reason: 'rate limit exceeded' })
  const frames = socket.received
  const pongs = frames.filter((f) => f.type === 'pong')
  const limited = frames.filter((f) => f.type === 'error')
  t.same(pongs.map((f) => f.ref), ['p0', 'p1', 'p2', 'p3', 'p4'], 'the burst is served')
  t.equal(limited.length, 10, 'ten refusals in a row, then the close')
  t.ok(limited.every((f, i) => f.code === 'rate_limited' && f.ref === `p${i + 5}`), 'each refusal carries its frame\'s ref')
})

t.test('a client within its rate is never limited, and the bucket refills', async (t) => {
  const { socket } = await oneSocket(t, { WS_RATE: '20', WS_BURST: '5' })
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 5; i++) socket.send({ type: 'ping', ref: `${round}-${i}` })
    for (let i = 0; i < 5; i++) t.match(await socket.next(), { type: 'pong', ref: `${round}-${i}` })
    await delay(300)
  }
})

t.test('garbage runs out the budget sooner: bad_request, then rate_limited, then 1008', async (t) => {
  const { socket } = await oneSocket(t)
  for (let i = 0; i < 40; i++) socket.send('not json')
  t.equal((await socket.closed).code, 1008)
  const codes = socket.received.filter((f) => f.type === 'error').map((f) => f.code)
  t.same(codes.slice(0, 10), Array(10).fill('bad_request'), 'the default burst (100) pays for ten invalid frames')
  t.same(codes.slice(10), Array(10).fill('rate_limited'))
})

t.test('a socket is closed with 1008 when its token expires', async (t) => {
  const { baseUrl, api } = await startTestServer(t, backend)
  const user = await api.user()
  const exp = Math.floor(Date.now() / 1000) + 2
  // The server's own claims (aud names its database) with an earlier exp.
  const token = signJwt({ alg: 'HS256', typ: 'JWT' }, { ...decodeJwt(user.token).payload, exp })
  const socket = await connect(baseUrl, token)
  const started = Date.now()
  t.same(await socket.closed, { code: 1008, reason: 'token expired' })
  t.ok(Date.now() <= exp * 1000 + 1000, 'closed at expiry, not at the next heartbeat')
  t.ok(Date.now() - started >= 500, 'not before')
})

t.test('a slow consumer is closed with 1013 instead of growing memory; others keep receiving', async (t) => {
  const { baseUrl, api, server } = await startTestServer(t, backend, {
    env: { WS_MAX_BACKPRESSURE: '65536', ...HIGH_FRAME_RATE }
  })
  const [sender, reader, stalled] = await Promise.all([api.user('s'), api.user('r'), api.user('x')])
  const sockets = await Promise.all([sender, reader, stalled].map(async (u) => await connect(baseUrl, u.token)))
  t.teardown(async () => await closeAll(sockets))
  const [s, r, x] = sockets as unknown as [TestSocket, TestSocket, TestSocket]
  for (const socket of sockets) t.match(await socket.request({ type: 'join', room: 'general' }), { type: 'joined' })

  // Stop reading: the kernel buffers fill (a few MB on loopback), then uWS's backpressure for this socket grows.
  const raw = (x.ws as WebSocket & { _socket: { pause: () => void, resume: () => void } })._socket
  raw.pause()
  const body = 'y'.repeat(4000)
  const total = 1500
  for (let i = 0; i < total; i++) s.send({ type: 'message', room: 'general', body, clientMsgId: `m${i}` })
  let acked = 0
  while (acked < total) {
    const ack = await s.next('ack', 20_000)
    if (ack.seq !== ++acked) t.fail(`ack for seq ${String(ack.seq)}, expected ${acked}`)
  }
  let seen = 0
  while (seen < total) {
    const message = await r.next('message', 20_000)
    if (message.seq !== ++seen) t.fail(`reader got seq ${String(message.seq)}, expected ${seen}`)
  }
  t.pass('the reading socket got every message in order')

  const stats = server.app.realtime.stats().gateway
  t.ok(stats.dropped >= 1, `drops are counted (${stats.dropped})`)
  t.equal(stats.slowClosed, 1, 'the stalled socket was closed')
  raw.resume()
  // The close frame queues behind a full buffer, where uWS may drop it too and just close the connection.
  const closed = await x.closed
  t.ok(closed.code === 1013 || closed.code === 1006, `closed as too slow (${closed.code} ${closed.reason})`)
  t.equal(server.app.realtime.stats().gateway.sockets, 2, 'the server let go of it')
})

t.test('typing reaches the others in the room, never the typist; not joined is forbidden', async (t) => {
  const { baseUrl, api } = await startTestServer(t, backend)
  const [a, b] = await Promise.all([api.user('a'), api.user('b')])
  const sa = await connect(baseUrl, a.token)
  const sb = await connect(baseUrl, b.token)
  t.teardown(async () => await closeAll([sa, sb]))
  t.match(await sa.request({ type: 'typing', room: 'general', typing: true }), { type: 'error', code: 'forbidden' })
  await sa.request({ type: 'join', room: 'general' })
  await sb.request({ type: 'join', room: 'general' })
  t.match(await sa.next('presence'), { type: 'presence', room: 'general', userId: b.id, status: 'online' }, 'a sees b come online')
  sa.send({ type: 'typing', room: 'general', typing: true })
  t.same(await sb.next('typing'), { type: 'typing', room: 'general', userId: a.id, username: a.username, typing: true })
  t.match(await sa.request({ type: 'ping' }), { type: 'pong' })
  t.same(sa.pending(), [], 'the typist gets nothing back')
})

t.test('an upgrade without a usable token opens no socket', async (t) => {
  const { baseUrl } = await startTestServer(t, backend)
  await t.rejects(openSocket(baseUrl, { token: 'not-a-jwt', via: 'query' }), /HTTP 401/)
})

t.test('a plain GET /ws (no upgrade) is told what the endpoint is', async (t) => {
  const { api } = await startTestServer(t, backend)
  const user = await api.user()
  const response = await api.request('GET', '/ws', { token: user.token })
  t.equal(response.status, 400)
  t.same(response.body, { error: 'bad_request', message: 'GET /ws is the WebSocket endpoint: send a WebSocket upgrade request' })
})

t.test('a write failing for an unexpected reason: internal, nothing stored or sent, the socket stays open', async (t) => {
  let failing = true
  const isInsert = (node: RootOperationNode): boolean => node.kind === 'RawNode' &&
    (node as unknown as { sqlFragments: readonly string[] }).sqlFragments.join('?').includes('from chat_insert_messages(')
  const plugin: KyselyPlugin = {
    transformQuery ({ node }) {
      if (failing && isInsert(node)) throw new Error('injected: not a database outage')
      return node
    },
    transformResult: async ({ result }) => result
  }
  const { baseUrl, api } = await startTestServer(t, backend, {
    openDatabase: async (options) => {
      const handle = await createDatabase(options)
      return { ...handle, db: handle.db.withPlugin(plugin) }
    }
  })
  const [a, b] = await Promise.all([api.user('a'), api.user('b')])
  const sa = await connect(baseUrl, a.token)
  const sb = await connect(baseUrl, b.token)
  t.teardown(async () => await closeAll([sa, sb]))
  await sa.request({ type: 'join', room: 'general' })
  await sb.request({ type: 'join', room: 'general' })
  sa.send({ type: 'message', room: 'general', body: 'boom', clientMsgId: 'x', ref: 'boom' })
  t.same(await sa.next('error'), { type: 'error', code: 'internal', message: 'internal error', ref: 'boom' })
  t.match(await sb.request({ type: 'ping' }), { type: 'pong' })
  t.same(sb.pending(), [], 'nothing was published')
  failing = false
  t.match(await sa.request({ type: 'message', room: 'general', body: 'fine', clientMsgId: 'x' }), { type: 'ack', seq: 1 }, 'the socket still works; the failed message used no seq')
  const history = await api.request('GET', '/rooms/general/messages', { token: a.token })
  t.same(history.body.messages.map((m: { body: string }) => m.body), ['fine'])
})
