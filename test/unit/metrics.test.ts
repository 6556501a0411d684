import { readFileSync } from 'node:fs'
import t from 'tap'
import { createMetrics } from '../../plugins/infra/metrics.js'
import { loadConfig } from '../../src/config.js'
import { HTTP_STATUS, type ErrorCode } from '../../src/errors.js'
import type { RealtimeStats } from '../../src/realtime.js'
import { parsePrometheus } from '../helpers/prometheus.js'

const SECRET = 'unit-test-secret-that-is-at-least-32-bytes'

/** The realtime side's counts, all zero but `changes`. */
function stats (changes: { gateway?: Partial<RealtimeStats['gateway']>, feed?: Partial<RealtimeStats['feed']>, pipeline?: Partial<RealtimeStats['pipeline']> } = {}): RealtimeStats {
  return {
    gateway: {
      sockets: 0,
      accepted: 0,
      closed: { 1000: 0, 1013: 0, other: 0 },
      refused: { unauthorized: 0, unavailable: 0, shutting_down: 0, internal: 0 },
      rateLimited: 0,
      dropped: 0,
      slowClosed: 0,
      sent: 0,
      errors: { bad_request: 0, unauthorized: 0, forbidden: 0, not_found: 0, rate_limited: 0, unavailable: 0, internal: 0 },
      ...changes.gateway
    },
    writer: { queued: 0, batches: 0, written: 0, refused: 0, failed: 0 },
    feed: { rooms: 0, repairs: 0, repaired: 0, checks: 0, checkFailures: 0, resumed: 0, sent: 0, ...changes.feed },
    bus: { published: 0, received: 0, dropped: 0, probeFailures: 0, resyncs: 0 },
    pipeline: { stored: 0, ...changes.pipeline },
    membership: { joins: 0, replayed: 0 },
    presence: { users: 0, entries: 0 }
  }
}

const noRestErrors = (): Record<ErrorCode, number> => Object.fromEntries(Object.keys(HTTP_STATUS).map((code) => [code, 0])) as Record<ErrorCode, number>

t.test('histograms: cumulative buckets with le, +Inf, _sum and _count, per via', async (t) => {
  const { metrics, meter } = createMetrics(() => stats(), noRestErrors())
  meter.acked('socket', 0.003)
  meter.acked('socket', 0.003)
  meter.acked('socket', 0.001)
  meter.acked('rest', 20)
  for (const size of [1, 500, 501]) meter.batchWritten(size)
  const s = parsePrometheus(await metrics.text())
  t.equal(s.types.get('chat_message_ack_seconds'), 'histogram')
  t.equal(s.value('chat_message_ack_seconds_bucket', { via: 'socket', le: '0.001' }), 1, 'a bound is inclusive')
  t.equal(s.value('chat_message_ack_seconds_bucket', { via: 'socket', le: '0.0025' }), 1)
  t.equal(s.value('chat_message_ack_seconds_bucket', { via: 'socket', le: '0.005' }), 3, 'cumulative')
  t.equal(s.value('chat_message_ack_seconds_bucket', { via: 'socket', le: '10' }), 3)
  t.equal(s.value('chat_message_ack_seconds_bucket', { via: 'socket', le: '+Inf' }), 3)
  t.equal(s.value('chat_message_ack_seconds_count', { via: 'socket' }), 3)
  t.ok(Math.abs((s.value('chat_message_ack_seconds_sum', { via: 'socket' }) ?? 0) - 0.007) < 1e-12, '_sum')
  t.equal(s.value('chat_message_ack_seconds_bucket', { via: 'rest', le: '10' }), 0, 'above every bound: only in +Inf')
  t.equal(s.value('chat_message_ack_seconds_bucket', { via: 'rest', le: '+Inf' }), 1)
  t.equal(s.value('chat_message_ack_seconds_sum', { via: 'rest' }), 20)
  t.equal(s.value('chat_write_batch_size_bucket', { le: '1' }), 1)
  t.equal(s.value('chat_write_batch_size_bucket', { le: '500' }), 2)
  t.equal(s.value('chat_write_batch_size_bucket', { le: '1000' }), 3)
  t.equal(s.value('chat_write_batch_size_sum'), 1002)
  t.equal(s.value('chat_write_batch_size_count'), 3)
  const bounds = s.samples.filter((x) => x.name === 'chat_message_ack_seconds_bucket' && x.labels.via === 'socket').map((x) => x.labels.le)
  t.same(bounds, ['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf'], '1 ms to 10 s, in order')
})

t.test('counts are read from the parts when scraped, labelled ones with every value', async (t) => {
  let current = stats()
  const restErrors = noRestErrors()
  const { metrics } = createMetrics(() => current, restErrors)
  let s = parsePrometheus(await metrics.text())
  t.equal(s.value('chat_messages_stored_total'), 0)
  t.equal(s.value('chat_errors_total', { via: 'rest', code: 'conflict' }), 0, 'every REST code from the start')
  t.equal(s.value('chat_errors_total', { via: 'socket', code: 'internal' }), 0, 'every socket code from the start')
  t.equal(s.value('chat_errors_total', { via: 'socket', code: 'conflict' }), undefined, 'no socket code the socket cannot send')

  current = stats({
    gateway: { sockets: 3, slowClosed: 2, sent: 5, closed: { 1000: 4, 1013: 2, other: 1 }, errors: { ...stats().gateway.errors, unavailable: 6 } },
    feed: { sent: 7 },
    pipeline: { stored: 42 }
  })
  restErrors.unavailable = 2
  s = parsePrometheus(await metrics.text())
  t.equal(s.value('chat_sockets'), 3)
  t.equal(s.types.get('chat_sockets'), 'gauge')
  t.equal(s.value('chat_messages_stored_total'), 42)
  t.equal(s.types.get('chat_messages_stored_total'), 'counter')
  t.equal(s.value('chat_slow_consumer_closes_total'), 2)
  t.equal(s.value('chat_deliveries_total'), 12, 'room publishes and direct sends together')
  t.equal(s.value('chat_connections_closed_total', { code: '1013' }), 2)
  t.equal(s.value('chat_connections_closed_total', { code: 'other' }), 1)
  t.equal(s.value('chat_errors_total', { via: 'socket', code: 'unavailable' }), 6)
  t.equal(s.value('chat_errors_total', { via: 'rest', code: 'unavailable' }), 2)
  t.equal(s.value('chat_upgrades_refused_total', { reason: 'shutting_down' }), 0)
})

t.test('every app has its own registry; Node\'s process metrics are shared, once', async (t) => {
  const one = createMetrics(() => stats({ gateway: { sockets: 1 } }), noRestErrors())
  const two = createMetrics(() => stats({ gateway: { sockets: 2 } }), noRestErrors())
  const [a, b] = [parsePrometheus(await one.metrics.text()), parsePrometheus(await two.metrics.text())]
  t.equal(a.value('chat_sockets'), 1)
  t.equal(b.value('chat_sockets'), 2, 'no series shared between apps')
  for (const scrape of [a, b]) t.equal(scrape.samples.filter((x) => x.name === 'process_cpu_seconds_total').length, 1, 'process metrics once in each')
  t.match(one.metrics.contentType, /^text\/plain; version=0\.0\.4/)
})

t.test('the Grafana dashboard is importable JSON over series this server has', async (t) => {
  const dashboard = JSON.parse(readFileSync(new URL('../../docs/grafana/chat-dashboard.json', import.meta.url), 'utf8')) as {
    __inputs: Array<{ name: string, type: string, pluginId: string }>
    uid: string
    title: string
    panels: Array<{ id: number, type: string, title: string, gridPos: { x: number, y: number, w: number, h: number }, datasource?: { uid: string }, targets?: Array<{ expr: string }> }>
  }
  t.match(dashboard.__inputs, [{ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' }], 'a Prometheus datasource input')
  t.ok(dashboard.uid !== '' && dashboard.title !== '')
  const ids = dashboard.panels.map((p) => p.id)
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')

  const { metrics } = createMetrics(() => stats(), noRestErrors())
  // Every family the server exports (histograms by their base name), from a scrape's TYPE lines.
  const known = new Set(parsePrometheus(await metrics.text()).types.keys())
  const referenced = new Set<string>()
  const cells = new Set<string>()
  for (const panel of dashboard.panels) {
    const { x, y, w, h } = panel.gridPos
    t.ok(x >= 0 && w > 0 && x + w <= 24, `${panel.title}: within 24 columns`)
    for (let row = y; row < y + h; row++) {
      for (let col = x; col < x + w; col++) {
        if (cells.has(`${row}:${col}`)) t.fail(`${panel.title} overlaps another panel at ${row}:${col}`)
        cells.add(`${row}:${col}`)
      }
    }
    if (panel.type === 'row') continue
    t.equal(panel.datasource?.uid, '${DS_PROMETHEUS}', `${panel.title}: the input datasource`)
    t.ok((panel.targets ?? []).length > 0, `${panel.title}: has queries`)
    for (const { expr } of panel.targets ?? []) {
      for (const [name = ''] of expr.matchAll(/\b(?:chat|nodejs|process)_[a-z0-9_]+/g)) referenced.add(name)
    }
  }
  for (const name of referenced) {
    const family = name.replace(/_(bucket|sum|count)$/, '')
    t.ok(known.has(name) || known.has(family), `${name} exists`)
  }
  for (const name of ['chat_sockets', 'chat_message_ack_seconds', 'chat_deliveries_total', 'chat_write_batch_size', 'chat_errors_total', 'chat_slow_consumer_closes_total', 'chat_bus_dropped_total', 'chat_feed_repairs_total', 'nodejs_eventloop_lag_p99_seconds']) {
    t.ok([...referenced].some((r) => r === name || r.startsWith(`${name}_`)), `the dashboard shows ${name}`)
  }
})

t.test('METRICS_TOKEN: empty leaves /metrics open, anything else is its bearer token', async (t) => {
  t.equal(loadConfig({ JWT_SECRET: SECRET }).metrics.token, null)
  t.equal(loadConfig({ JWT_SECRET: SECRET, METRICS_TOKEN: '' }).metrics.token, null)
  t.equal(loadConfig({ JWT_SECRET: SECRET, METRICS_TOKEN: ' s3cret ' }).metrics.token, 's3cret', 'trimmed like every variable')
})
