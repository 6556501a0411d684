import t, { type Test } from 'tap'
import type WebSocket from 'ws'
import { backends } from '../helpers/backends.js'
import { delay, HIGH_FRAME_RATE, waitUntil } from '../helpers/chat.js'
import type { ApiClient } from '../helpers/http.js'
import { parsePrometheus, type Scrape } from '../helpers/prometheus.js'
import { startTestServer } from '../helpers/server.js'
import { connect, refusedUpgrade } from '../helpers/socket.js'

// Metrics count what the server does, not what the database is: the embedded backend is enough.
const [backend] = backends().run
if (backend === undefined) throw new Error('no backend')

interface Scraper {
  /** GET /metrics, parsed; fails unless it answers 200 in the Prometheus text format. */
  now (): Promise<Scrape>
  /** Scrapes until `check` holds (counts of answers already sent may be taken a moment later), then returns that scrape. */
  until (check: (s: Scrape) => boolean, what: string, ms?: number): Promise<Scrape>
}

function scraper (api: ApiClient, headers: Record<string, string> = {}): Scraper {
  const now = async (): Promise<Scrape> => {
    const res = await api.request<string>('GET', '/metrics', { headers })
    if (res.status !== 200) throw new Error(`/metrics: ${res.status} ${res.text}`)
    if (!(res.headers.get('content-type') ?? '').startsWith('text/plain; version=0.0.4')) throw new Error(`/metrics content-type ${res.headers.get('content-type') ?? ''}`)
    return parsePrometheus(res.text)
  }
  return {
    now,
    async until (check, what, ms = 5000) {
      const deadline = Date.now() + ms
      for (;;) {
        const last = await now()
        if (check(last)) return last
        if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`)
        await delay(25)
      }
    }
  }
}

/** How much the samples of `name` with `labels` grew (summed) between two scrapes. */
function moved (before: Scrape, after: Scrape, name: string, labels: Record<string, string> = {}): number {
  return after.sum(name, labels) - before.sum(name, labels)
}

const CHAT_LABELS = new Set(['via', 'code', 'reason', 'le'])

/** What a server that has done nothing yet shows: API.md's series, every labelled series at 0, and Node's process metrics. */
function checkFresh (t: Test, s: Scrape): void {
  t.equal(s.types.get('chat_sockets'), 'gauge')
  t.equal(s.types.get('chat_messages_stored_total'), 'counter')
  t.equal(s.types.get('chat_message_ack_seconds'), 'histogram')
  t.equal(s.types.get('chat_write_batch_size'), 'histogram')
  t.equal(s.types.get('chat_slow_consumer_closes_total'), 'counter')
  t.equal(s.value('chat_sockets'), 0)
  t.equal(s.value('chat_messages_stored_total'), 0)
  for (const via of ['socket', 'rest']) {
    t.equal(s.value('chat_message_ack_seconds_count', { via }), 0, `ack count via ${via} at 0`)
    t.equal(s.value('chat_message_ack_seconds_bucket', { via, le: '+Inf' }), 0)
    t.equal(s.value('chat_message_ack_seconds_bucket', { via, le: '0.001' }), 0, 'a 1 ms bucket')
    t.equal(s.value('chat_message_ack_seconds_bucket', { via, le: '10' }), 0, 'a 10 s bucket')
  }
  t.equal(s.value('chat_write_batch_size_count'), 0)
  for (const code of ['1000', '1001', '1005', '1006', '1008', '1009', '1011', '1013', 'other']) t.equal(s.value('chat_connections_closed_total', { code }), 0, `closed{code=${code}} at 0`)
  for (const reason of ['unauthorized', 'unavailable', 'shutting_down', 'internal']) t.equal(s.value('chat_upgrades_refused_total', { reason }), 0, `refused{reason=${reason}} at 0`)
  for (const code of ['bad_request', 'unauthorized', 'forbidden', 'not_found', 'rate_limited', 'unavailable', 'internal']) {
    t.equal(s.value('chat_errors_total', { via: 'socket', code }), 0, `socket ${code} at 0`)
    t.equal(s.value('chat_errors_total', { via: 'rest', code }), 0, `rest ${code} at 0`)
  }
  for (const name of ['chat_connections_accepted_total', 'chat_joins_total', 'chat_replayed_messages_total', 'chat_write_queue_depth', 'chat_rate_limited_frames_total',
    'chat_dropped_frames_total', 'chat_deliveries_total', 'chat_presence_entries', 'chat_bus_published_total', 'chat_bus_received_total', 'chat_bus_dropped_total',
    'chat_bus_probe_failures_total', 'chat_feed_repairs_total', 'chat_feed_repaired_messages_total']) {
    t.equal(s.value(name), 0, `${name} at 0`)
  }
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
    t.ok(s.samples.some((sample) => sample.name === name), `${name} (Node's default metrics)`)
  }
  t.ok((s.value('process_cpu_seconds_total') ?? 0) > 0, 'process metrics are live')
}

/** Checks a refused scrape: 401 with the contract's body, and no series. */
async function refused (t: Test, api: ApiClient, headers: Record<string, string>, what: string): Promise<void> {
  const res = await api.request('GET', '/metrics', { headers })
  t.equal(res.status, 401, `${what}: 401`)
  t.equal(res.body?.error, 'unauthorized', `${what}: error unauthorized`)
  t.ok(typeof res.body?.message === 'string' && res.body.message !== '', `${what}: a message`)
  t.notMatch(res.text, /chat_/, `${what}: no series`)
}

// One server for most of this file (each start costs seconds): METRICS_TOKEN set, default limits.
t.test('with METRICS_TOKEN: series from the start, moving with traffic, only for that token', async (t) => {
  const METRICS_TOKEN = 'metrics-token-for-tests-0123456789'
  const { api, baseUrl } = await startTestServer(t, backend, { env: { METRICS_TOKEN } })
  const metrics = scraper(api, { authorization: `Bearer ${METRICS_TOKEN}` })

  await t.test('from the start', async (t) => { checkFresh(t, await metrics.now()) })

  await t.test('sockets, messages over both paths, errors and refusals; no label names a room or user', async (t) => {
    const [alice, bob] = await Promise.all([api.user('ma'), api.user('mb')])
    const before = await metrics.now()

    const a = await connect(baseUrl, alice.token)
    const b = await connect(baseUrl, bob.token)
    t.teardown(async () => { await Promise.all([a.close(), b.close()]) })
    let s = await metrics.now()
    t.equal(s.value('chat_sockets'), 2, 'two sockets open')
    t.equal(moved(before, s, 'chat_connections_accepted_total'), 2, 'two accepted')
    t.equal(s.value('chat_presence_users'), 2, 'two users online here')

    for (const socket of [a, b]) t.match(await socket.request({ type: 'join', room: 'general' }), { type: 'joined' })
    const sent = 3
    for (let i = 0; i < sent; i++) t.match(await a.request({ type: 'message', room: 'general', body: `hello ${i}`, clientMsgId: `m${i}` }), { type: 'ack' })
    await waitUntil(() => b.received.filter((f) => f.type === 'message').length === sent, 5000, 'b got the messages')
    s = await metrics.now()
    t.equal(moved(before, s, 'chat_joins_total'), 2, 'two joins')
    t.equal(s.value('chat_presence_entries'), 2, 'two (room, user) presence entries')
    t.equal(moved(before, s, 'chat_messages_stored_total'), sent, 'messages stored')
    t.equal(s.value('chat_message_ack_seconds_count', { via: 'socket' }), sent, 'one ack latency per socket message')
    t.ok((s.value('chat_message_ack_seconds_sum', { via: 'socket' }) ?? 0) > 0, 'with a duration')
    t.ok((s.value('chat_write_batch_size_count') ?? 0) >= 1, 'batch sizes observed')
    t.equal(s.value('chat_write_batch_size_sum'), sent, 'the batches held every message written')
    // Each message reached b through the room topic (a, the sender, gets its ack instead), and a
    // got an ack for it: at least 2 frames per message, besides welcomes and joins.
    t.ok(moved(before, s, 'chat_deliveries_total') >= 2 * sent, `deliveries counted (${moved(before, s, 'chat_deliveries_total')})`)

    // REST: two new messages and one repeat (200), each answered and timed.
    for (const [clientMsgId, status] of [['r1', 201], ['r2', 201], ['r1', 200]] as const) {
      t.equal((await api.request('POST', '/rooms/general/messages', { token: alice.token, json: { body: 'over rest', clientMsgId } })).status, status, `POST ${clientMsgId}: ${status}`)
    }
    s = await metrics.until((x) => x.value('chat_message_ack_seconds_count', { via: 'rest' }) === 3, 'three REST answers timed')
    t.equal(s.value('chat_message_ack_seconds_count', { via: 'rest' }), 3, 'REST answers timed, the repeat (200) included')
    t.equal(moved(before, s, 'chat_messages_stored_total'), sent + 2, 'the repeat is not stored twice')

    // Errors, by path and code.
    t.equal((await api.request('GET', '/rooms/no-such-room', { token: alice.token })).status, 404)
    t.equal((await api.request('GET', '/no/such/route')).status, 404)
    t.equal((await api.request('GET', '/rooms')).status, 401)
    t.match(await a.request({ type: 'message', room: 'elsewhere', body: 'x' }), { type: 'error', code: 'forbidden' })
    t.match(await a.request({ type: 'nonsense' }), { type: 'error', code: 'bad_request' })
    t.equal((await refusedUpgrade(baseUrl, { token: 'not-a-token' })).status, 401)
    t.equal((await refusedUpgrade(baseUrl)).status, 401)
    s = await metrics.until((x) => moved(before, x, 'chat_errors_total', { via: 'rest', code: 'unauthorized' }) === 1, 'REST errors counted')
    t.equal(moved(before, s, 'chat_errors_total', { via: 'rest', code: 'not_found' }), 2, 'two REST 404s: a route\'s and no route\'s')
    t.equal(moved(before, s, 'chat_errors_total', { via: 'rest', code: 'unauthorized' }), 1, 'a REST 401')
    t.equal(moved(before, s, 'chat_errors_total', { via: 'socket', code: 'forbidden' }), 1, 'a socket forbidden')
    t.equal(moved(before, s, 'chat_errors_total', { via: 'socket', code: 'bad_request' }), 1, 'a socket bad_request')
    t.equal(moved(before, s, 'chat_upgrades_refused_total', { reason: 'unauthorized' }), 2, 'two upgrades refused for their token')

    // A join resuming from seq 0 replays what was stored.
    const c = await connect(baseUrl, bob.token)
    t.match(await c.request({ type: 'join', room: 'general', afterSeq: 0 }), { type: 'joined' })
    s = await metrics.now()
    t.equal(moved(before, s, 'chat_replayed_messages_total'), sent + 2, 'every stored message replayed once')

    // Closing: the client's normal close (1000), and one the server makes (1009: a frame too big).
    c.ws.close(1000)
    await c.closed
    b.send(`{"type":"ping","pad":"${'x'.repeat(70_000)}"}`)
    t.equal((await b.closed).code, 1009)
    s = await metrics.until((x) => x.value('chat_sockets') === 1, 'two sockets closed')
    t.equal(s.value('chat_sockets'), 1, 'one socket left')
    t.equal(moved(before, s, 'chat_connections_closed_total', { code: '1000' }), 1, 'a 1000 close')
    t.equal(moved(before, s, 'chat_connections_closed_total', { code: '1009' }), 1, 'a 1009 close')
    t.equal(s.value('chat_presence_entries'), 1, 'one presence entry left')

    // Bounded labels only: nothing names a room or a user. (User ids are small numbers, like
    // bucket bounds: the label names say more than their values.)
    const ids = new Set([alice.username, bob.username, 'general'])
    for (const sample of s.samples) {
      for (const [key, value] of Object.entries(sample.labels)) {
        if (ids.has(value) || /room|user/i.test(key)) t.fail(`${sample.name} has label ${key}=${value}`)
      }
      if (sample.name.startsWith('chat_')) {
        const extra = Object.keys(sample.labels).filter((key) => !CHAT_LABELS.has(key))
        if (extra.length > 0) t.fail(`${sample.name} has labels ${extra.join(', ')}`)
      }
    }
    t.pass('no series is labelled by a room or a user')
  })

  await t.test('rate-limited frames and the 1008 close that follows', async (t) => {
    const user = await api.user('flood')
    const before = await metrics.now()
    const socket = await connect(baseUrl, user.token)
    // An invalid frame costs 10 of the default burst of 100: ten bad_request, ten rate_limited, then 1008.
    for (let i = 0; i < 40; i++) socket.send('not json')
    t.equal((await socket.closed).code, 1008)
    const s = await metrics.until((x) => moved(before, x, 'chat_connections_closed_total', { code: '1008' }) === 1, 'the 1008 close counted')
    t.equal(moved(before, s, 'chat_rate_limited_frames_total'), 11, 'ten refusals and the frame that closed it')
    t.equal(moved(before, s, 'chat_errors_total', { via: 'socket', code: 'rate_limited' }), 10, 'ten rate_limited errors')
    t.equal(moved(before, s, 'chat_errors_total', { via: 'socket', code: 'bad_request' }), 10, 'ten bad_request errors')
  })

  await t.test('only METRICS_TOKEN is let in', async (t) => {
    const before = await metrics.now()
    await refused(t, api, {}, 'no token')
    await refused(t, api, { authorization: `Bearer ${METRICS_TOKEN}x` }, 'a wrong token')
    await refused(t, api, { authorization: `Bearer ${METRICS_TOKEN.slice(0, -1)}` }, 'a prefix of the token')
    await refused(t, api, { authorization: METRICS_TOKEN }, 'no scheme')
    await refused(t, api, { authorization: `Basic ${METRICS_TOKEN}` }, 'another scheme')
    const user = await api.user()
    await refused(t, api, { authorization: `Bearer ${user.token}` }, 'a user\'s access token')
    const s = await metrics.until((x) => moved(before, x, 'chat_errors_total', { via: 'rest', code: 'unauthorized' }) === 6, 'the refusals counted')
    t.equal(moved(before, s, 'chat_errors_total', { via: 'rest', code: 'unauthorized' }), 6, 'the refusals were counted')
  })
})

t.test('without METRICS_TOKEN /metrics is open; a slow consumer raises chat_slow_consumer_closes_total', async (t) => {
  const { api, baseUrl } = await startTestServer(t, backend, { env: { WS_MAX_BACKPRESSURE: '65536', ...HIGH_FRAME_RATE } })
  const metrics = scraper(api)
  t.equal((await metrics.now()).value('chat_slow_consumer_closes_total'), 0, 'served without a token')
  const [sender, stalled] = await Promise.all([api.user('s'), api.user('x')])
  const s = await connect(baseUrl, sender.token)
  const x = await connect(baseUrl, stalled.token)
  t.teardown(async () => { await Promise.all([s.close(), x.close()]) })
  for (const socket of [s, x]) t.match(await socket.request({ type: 'join', room: 'general' }), { type: 'joined' })
  // Stop reading: the kernel buffers fill, then uWS's backpressure for this socket passes 64 KiB.
  const raw = (x.ws as WebSocket & { _socket: { pause: () => void, resume: () => void } })._socket
  raw.pause()
  const body = 'y'.repeat(4000)
  const total = 1500
  for (let i = 0; i < total; i++) s.send({ type: 'message', room: 'general', body, clientMsgId: `m${i}` })
  for (let acked = 0; acked < total; acked++) await s.next('ack', 20_000)
  const after = await metrics.until((m) => m.value('chat_slow_consumer_closes_total') === 1, 'the slow consumer closed')
  raw.resume()
  t.equal(after.value('chat_slow_consumer_closes_total'), 1, 'one slow-consumer close')
  t.ok((after.value('chat_dropped_frames_total') ?? 0) >= 1, 'the frames uWS refused are counted')
  t.equal(after.value('chat_messages_stored_total'), total)
  t.equal(after.value('chat_message_ack_seconds_count', { via: 'socket' }), total)
  t.equal(after.value('chat_write_batch_size_sum'), total)
  const closed = await x.closed
  t.ok(closed.code === 1013 || closed.code === 1006, `the client saw ${closed.code}`)
  const end = await metrics.until((m) => m.value('chat_connections_closed_total', { code: '1013' }) === 1, 'the close counted')
  t.equal(end.value('chat_connections_closed_total', { code: '1013' }), 1, 'closed with 1013, as the server saw it')
})
