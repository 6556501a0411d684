// Black-box tests of the WebSocket limits in the public contract (/work/shared/API.md): flooding
// (rate_limited errors, then close 1008) and heartbeats (HEARTBEAT_TIMEOUT, the `heartbeat` field of
// welcome, closing a silent socket and marking its user offline within HEARTBEAT_TIMEOUT + 5 s).
// The rest of the socket contract is in socket-contract.test.ts. Close 1001 on shutdown is tested
// elsewhere (process tests) and is not repeated here.
//
// Two servers per backend: one with a small per-socket frame limit (WS_RATE=5, WS_BURST=5, this
// server's knobs for it) so flooding is quick to reach, one with HEARTBEAT_TIMEOUT=8 (the shortest
// uWS supports) so a missed heartbeat is quick to reach.
import t, { type Test } from 'tap'
import { checkErrorFrame, connectUntilTeardown, delay, pickFields, uniqueRoomId, type Account } from '../helpers/chat.js'
import { eachBackend, startTestServer } from '../helpers/server.js'
import { nextOrNull, type ConnectedSocket, type Frame, type SocketOptions } from '../helpers/socket.js'

const HEARTBEAT = 8
/** uWS checks timeouts on a 4 s tick: its ping, and the close after it, may come up to a tick early. */
const TICK_MS = 4000

/** A room id unique to this run. */
function roomId (label: string): string {
  return uniqueRoomId('bbl', label)
}

eachBackend(t, async (t, backend) => {
  const [limited, beating] = await Promise.all([
    startTestServer(t, backend, { env: { WS_RATE: '5', WS_BURST: '5' } }),
    startTestServer(t, backend, { env: { HEARTBEAT_TIMEOUT: String(HEARTBEAT) } })
  ])

  const open = async (t: Test, baseUrl: string, user: { token: string }, options: Omit<SocketOptions, 'token'> = {}): Promise<ConnectedSocket> =>
    await connectUntilTeardown(t, baseUrl, user.token, options)

  t.test('flooding: rate_limited errors, then close 1008; the limit is per socket', async (t) => {
    const alice: Account = await limited.api.user('alice')
    const calm = await open(t, limited.baseUrl, alice)
    const flood = await open(t, limited.baseUrl, alice)

    // A few frames at once are within the burst: all served.
    for (const ref of ['c1', 'c2', 'c3']) calm.send({ type: 'ping', ref })
    for (const ref of ['c1', 'c2', 'c3']) t.strictSame(pickFields(await calm.next((f) => f.ref === ref), ['type', 'ref']), { type: 'pong', ref }, `within the burst: ${ref} served`)

    const sent = new Set<string>()
    let n = 0
    const timer = setInterval(() => {
      for (let i = 0; i < 5; i++) {
        if (flood.ws.readyState !== flood.ws.OPEN) return
        const ref = `f${++n}`
        sent.add(ref)
        flood.send({ type: 'ping', ref })
      }
    }, 10)
    t.teardown(() => clearInterval(timer))

    const firstLimited = await flood.next('error', 10000)
    checkErrorFrame(t, firstLimited, 'rate_limited', undefined, 'the first refused frame')
    t.ok(typeof firstLimited.ref === 'string' && sent.has(firstLimited.ref), `the error carries the ref of a frame sent (${String(firstLimited.ref)})`)

    // Another socket of the same user is not limited by this one's flood.
    t.strictSame(pickFields(await calm.request({ type: 'ping' }), ['type']), { type: 'pong' }, 'another socket, meanwhile: served')

    const closed = await Promise.race([flood.closed, delay(15000).then(() => null)])
    clearInterval(timer)
    t.equal(closed?.code, 1008, `sustained flooding: closed with 1008 after ${n} frames`)

    const frames = flood.received.filter((f) => f !== flood.welcome)
    const firstError = frames.findIndex((f) => f.type === 'error')
    t.ok(firstError >= 1, `the burst was served before any refusal (${firstError} pongs first)`)
    t.ok(frames.slice(0, firstError).every((f) => f.type === 'pong'), 'before the first refusal: only pongs')
    const errors = frames.filter((f) => f.type === 'error')
    t.ok(errors.length >= 1, `rate_limited errors came before the close (${errors.length})`)
    t.strictSame(errors.filter((f) => f.code !== 'rate_limited').map((f) => f.code), [], 'every error is rate_limited')

    t.strictSame(pickFields(await calm.request({ type: 'ping' }), ['type']), { type: 'pong' }, 'the other socket is still open after the close')
  })

  t.test('welcome.heartbeat equals HEARTBEAT_TIMEOUT', async (t) => {
    const user = await beating.api.user('hb')
    const s = await open(t, beating.baseUrl, user)
    t.strictSame(pickFields(s.welcome, ['type', 'user', 'heartbeat']), { type: 'welcome', user: { id: user.id, username: user.username }, heartbeat: HEARTBEAT })
  })

  t.test('a socket that misses its heartbeat is closed and its user goes offline within HEARTBEAT_TIMEOUT + 5 s', async (t) => {
    const { api, baseUrl } = beating
    const carol: Account = await api.user('carol')
    const bob: Account = await api.user('bob')
    const room = roomId('hb')
    t.equal((await api.request('POST', '/rooms', { token: carol.token, json: { id: room } })).status, 201)
    t.equal((await api.request('POST', `/rooms/${encodeURIComponent(room)}/members`, { token: bob.token, json: { userId: bob.id } })).status, 204)

    // The observer answers no protocol ping either, but keeps sending `ping` frames: any frame
    // counts as a sign of life, as for a client that cannot see WebSocket pings.
    const observer = await open(t, baseUrl, carol, { client: { autoPong: false } })
    const observerOpened = Date.now()
    const keepAlive = setInterval(() => { if (observer.ws.readyState === observer.ws.OPEN) observer.send({ type: 'ping' }) }, 400)
    t.teardown(() => clearInterval(keepAlive))
    t.equal((await observer.request({ type: 'join', room })).type, 'joined')

    // The silent one answers no protocol ping and sends nothing after its join.
    const silent = await open(t, baseUrl, bob, { client: { autoPong: false } })
    let pinged: number | null = null
    silent.ws.on('ping', () => { pinged ??= Date.now() })
    t.equal((await silent.request({ type: 'join', room })).type, 'joined')
    const silentSince = Date.now()
    const keys = ['type', 'room', 'userId', 'username', 'status']
    const isBob = (f: Frame): boolean => f.type === 'presence' && f.userId === bob.id

    const limit = (HEARTBEAT + 5) * 1000
    const closed = await Promise.race([silent.closed, delay(limit + 2000).then(() => null)])
    const closedAt = Date.now()
    const closedAfter = closedAt - silentSince
    t.ok(closed !== null, `the silent socket was closed (${closedAfter} ms after its last frame, code ${String(closed?.code)})`)
    t.ok(closedAfter >= HEARTBEAT * 1000 - TICK_MS, `not before HEARTBEAT_TIMEOUT, give or take uWS's tick (${closedAfter} ms)`)
    t.ok(pinged !== null && pinged <= closedAt, 'the server pinged it before closing it')

    const online = await nextOrNull(observer, isBob, 500)
    t.strictSame(online === null ? null : pickFields(online, keys), { type: 'presence', room, userId: bob.id, username: bob.username, status: 'online' }, 'the observer saw bob online first')
    const offline = await nextOrNull(observer, isBob, Math.max(100, silentSince + limit + 500 - Date.now()))
    const offlineAfter = Date.now() - silentSince
    t.strictSame(offline === null ? null : pickFields(offline, keys), { type: 'presence', room, userId: bob.id, username: bob.username, status: 'offline' },
      `then offline, within HEARTBEAT_TIMEOUT + 5 s (${offlineAfter} ms)`)

    // A socket that keeps talking outlives several heartbeat periods.
    const wait = observerOpened + 2 * HEARTBEAT * 1000 + 500 - Date.now()
    if (wait > 0) await delay(wait)
    t.strictSame(pickFields(await observer.request({ type: 'ping' }), ['type']), { type: 'pong' }, 'the socket sending ping frames is still open after 2 × HEARTBEAT_TIMEOUT')
  })
})
