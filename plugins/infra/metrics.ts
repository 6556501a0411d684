import fp from 'fastify-plugin'
import { collectDefaultMetrics, Counter, Gauge, Registry, type Histogram } from 'prom-client'
import { codeForStatus, HTTP_STATUS, type ErrorCode } from '../../src/errors.js'
import type { AckVia, Meter } from '../../src/metrics.js'
import type { RealtimeStats } from '../../src/realtime.js'

/** This app's metrics, as `GET /metrics` serves them. */
export interface Metrics {
  /** The Prometheus text format's content type. */
  readonly contentType: string
  /** Every series, read now. */
  text (): Promise<string>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Where the core reports ack latencies and batch sizes (see `src/metrics.ts`). */
    meter: Meter
    metrics: Metrics
  }
}

/** Seconds from a message's arrival to its ack: 1 ms (a group commit's delay) to 10 s (a database struggling). */
const ACK_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
/** Messages per group commit, up to WRITE_MAX_BATCH's largest setting. */
const BATCH_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]

/** One line of a series, as prom-client's Registry prints it. */
interface Sample { readonly metricName: string, readonly labels: Readonly<Record<string, string>>, readonly value: number }

/**
 * A histogram observed with two additions and a short scan. prom-client's own allocates and
 * hashes its labels on every observation (about 0.4 µs measured), too much to pay per message.
 */
class Buckets {
  /** Observations per bucket, not cumulative; the last one is above every bound. */
  private readonly counts: Float64Array
  private sum = 0

  constructor (private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe (value: number): void {
    let i = 0
    while (i < this.bounds.length && value > (this.bounds[i] as number)) i++
    this.counts[i] = (this.counts[i] as number) + 1
    this.sum += value
  }

  /** The series in Prometheus's shape: cumulative `_bucket`s with `le`, then `_sum` and `_count`. */
  values (name: string, labels: Readonly<Record<string, string>>): Sample[] {
    const values: Sample[] = []
    let total = 0
    this.bounds.forEach((bound, i) => {
      total += this.counts[i] as number
      values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: String(bound) }, value: total })
    })
    total += this.counts[this.bounds.length] as number
    values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: total })
    values.push({ metricName: `${name}_sum`, labels, value: this.sum })
    values.push({ metricName: `${name}_count`, labels, value: total })
    return values
  }
}

/**
 * A histogram over `Buckets`, for the registry. prom-client's Registry reads a metric through
 * `name`, `type`, `aggregator` and `get()` only, but `registerMetric` is typed for its own classes.
 */
function bucketsMetric (name: string, help: string, series: ReadonlyArray<readonly [labels: Readonly<Record<string, string>>, buckets: Buckets]>): Histogram {
  const shape = { name, help, type: 'histogram', aggregator: 'sum' } as const
  const get = async (): Promise<typeof shape & { values: Sample[] }> =>
    ({ ...shape, values: series.flatMap(([labels, buckets]) => buckets.values(name, labels)) })
  return { ...shape, get } as unknown as Histogram
}

type Read = (stats: RealtimeStats) => number
type ReadEach = (stats: RealtimeStats) => Readonly<Record<string, number>>

/** Open things now. */
const GAUGES: ReadonlyArray<readonly [name: string, help: string, read: Read]> = [
  ['chat_sockets', 'Open WebSockets on this node.', (s) => s.gateway.sockets],
  ['chat_write_queue_depth', 'Messages waiting for the next group commit.', (s) => s.writer.queued],
  ['chat_presence_entries', '(room, user) presence entries this node holds: a user with sockets in a room here.', (s) => s.presence.entries],
  ['chat_presence_users', 'Users with at least one socket on this node.', (s) => s.presence.users],
  ['chat_feed_rooms', 'Rooms with sockets on this node (joined or joining).', (s) => s.feed.rooms]
]

/** Counts the parts keep themselves, read when scraped. */
const COUNTERS: ReadonlyArray<readonly [name: string, help: string, read: Read]> = [
  ['chat_messages_stored_total', 'Messages stored (not repeats of a clientMsgId), from sockets and REST.', (s) => s.pipeline.stored],
  ['chat_slow_consumer_closes_total', 'Sockets closed with 1013 because they could not keep up.', (s) => s.gateway.slowClosed],
  ['chat_dropped_frames_total', 'Frames uWS refused for a socket\'s backpressure (the socket is then closed as a slow consumer).', (s) => s.gateway.dropped],
  ['chat_connections_accepted_total', 'WebSocket upgrades completed.', (s) => s.gateway.accepted],
  ['chat_rate_limited_frames_total', 'Socket frames refused by the per-socket rate limit.', (s) => s.gateway.rateLimited],
  ['chat_joins_total', 'Joins completed (`joined` sent).', (s) => s.membership.joins],
  ['chat_replayed_messages_total', 'Stored messages sent to joining sockets (join with afterSeq).', (s) => s.membership.replayed],
  ['chat_deliveries_total', 'Frames delivered to sockets: each socket reached by a room publish, plus frames sent to one socket.', (s) => s.feed.sent + s.gateway.sent],
  ['chat_bus_published_total', 'Envelopes this node handed to the bus.', (s) => s.bus.published],
  ['chat_bus_received_total', 'Envelopes from other nodes received over the bus.', (s) => s.bus.received],
  ['chat_bus_dropped_total', 'Envelopes the bus could not take (disconnected) or could not decode.', (s) => s.bus.dropped],
  ['chat_bus_probe_failures_total', 'Bus probes (this node hearing its own publish) that failed.', (s) => s.bus.probeFailures],
  ['chat_bus_resyncs_total', 'Times the bus was subscribed again after envelopes may have been lost.', (s) => s.bus.resyncs],
  ['chat_feed_repairs_total', 'Gap repairs: a room\'s missing messages read from the database.', (s) => s.feed.repairs],
  ['chat_feed_repaired_messages_total', 'Messages delivered by gap repairs.', (s) => s.feed.repaired],
  ['chat_feed_resumed_rooms_total', 'Rooms that could not be brought up to date in time: their sockets were closed to resume.', (s) => s.feed.resumed]
]

/** Counts by one bounded label (every value present from the start). */
const LABELLED_COUNTERS: ReadonlyArray<readonly [name: string, help: string, label: string, read: ReadEach]> = [
  ['chat_connections_closed_total', 'Sockets closed, by WebSocket close code (1000, 1001, 1005, 1006, 1008, 1009, 1011, 1013, or other).', 'code', (s) => s.gateway.closed],
  ['chat_upgrades_refused_total', 'WebSocket upgrades refused, by reason.', 'reason', (s) => s.gateway.refused]
]

/**
 * Node's process metrics, registered once per process: `collectDefaultMetrics` starts an
 * event-loop monitor and a GC observer that it never stops, so one set per app would pile up in
 * tests (many apps, one process). Each app's registry is merged with this one.
 */
let processRegistry: Registry | undefined
function processMetrics (): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry })
  }
  return processRegistry
}

/**
 * A registry of this app's series over `read` (the realtime side's counts) and `restErrors`,
 * with the histograms `meter` fills.
 */
export function createMetrics (read: () => RealtimeStats, restErrors: Readonly<Record<ErrorCode, number>>): { metrics: Metrics, meter: Meter } {
  const registry = new Registry()
  const registers: Registry[] = []
  for (const [name, help, value] of GAUGES) {
    registry.registerMetric(new Gauge({ name, help, registers, collect () { this.set(value(read())) } }))
  }
  for (const [name, help, value] of COUNTERS) {
    registry.registerMetric(new Counter({
      name,
      help,
      registers,
      collect () {
        this.reset()
        this.inc(value(read()))
      }
    }))
  }
  for (const [name, help, label, values] of LABELLED_COUNTERS) {
    registry.registerMetric(new Counter({
      name,
      help,
      labelNames: [label],
      registers,
      collect () {
        this.reset()
        for (const [key, n] of Object.entries(values(read()))) this.inc({ [label]: key }, n)
      }
    }))
  }
  registry.registerMetric(new Counter({
    name: 'chat_errors_total',
    help: 'Errors answered, by where (`socket`: error frames; `rest`: responses of 400 and above) and contract code; `unavailable` is the store or node refusing.',
    labelNames: ['via', 'code'],
    registers,
    collect () {
      this.reset()
      for (const [code, n] of Object.entries(read().gateway.errors)) this.inc({ via: 'socket', code }, n)
      for (const [code, n] of Object.entries(restErrors)) this.inc({ via: 'rest', code }, n)
    }
  }))

  const acks: Readonly<Record<AckVia, Buckets>> = { socket: new Buckets(ACK_BUCKETS), rest: new Buckets(ACK_BUCKETS) }
  const batches = new Buckets(BATCH_BUCKETS)
  registry.registerMetric(bucketsMetric('chat_message_ack_seconds', 'Seconds from a message\'s arrival (its frame, or its POST) to its ack (or 201/200 answer), by how it came.',
    [[{ via: 'socket' }, acks.socket], [{ via: 'rest' }, acks.rest]]))
  registry.registerMetric(bucketsMetric('chat_write_batch_size', 'Messages per group commit.', [[{}, batches]]))

  const merged = Registry.merge([processMetrics(), registry])
  return {
    metrics: {
      contentType: merged.contentType,
      text: async () => await merged.metrics()
    },
    meter: {
      acked (via, seconds) { acks[via].observe(seconds) },
      batchWritten (size) { batches.observe(size) }
    }
  }
}

/**
 * Prometheus metrics for this app: `fastify.meter` for the core to report to (registered before
 * realtime, which takes it) and `fastify.metrics` for `GET /metrics`. The realtime side's counts
 * are read when scraped, so this plugin expects `realtime` to be registered too.
 */
export default fp(async (fastify) => {
  const restErrors = Object.fromEntries(Object.keys(HTTP_STATUS).map((code) => [code, 0])) as Record<ErrorCode, number>
  const { metrics, meter } = createMetrics(() => fastify.realtime.stats(), restErrors)
  fastify.decorate('meter', meter)
  fastify.decorate('metrics', metrics)
  // Every REST answer of 400 and above, whichever part sent it (the error handler, a 404, a route's own 503).
  fastify.addHook('onResponse', (request, reply, done) => {
    if (reply.statusCode >= 400) restErrors[codeForStatus(reply.statusCode)]++
    done()
  })
}, { name: 'metrics' })
