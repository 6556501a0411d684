// The shape of one `npm run bench` run, as written to bench/results/<date>.json and read by the
// table, the chart and the smoke test.

/** The servers a run measures: ours, and the peers in bench/peers/. */
export const SERVERS = ['chat', 'uws-raw', 'socketio', 'socketio-insert', 'chat-fastify-listener'] as const
export type ServerName = typeof SERVERS[number]

export const SERVER_LABELS: Readonly<Record<ServerName, string>> = {
  chat: 'this server',
  'uws-raw': 'raw uWS pub/sub',
  socketio: 'Socket.IO 4',
  'socketio-insert': 'Socket.IO 4 + INSERT per message',
  'chat-fastify-listener': 'same Fastify app, own listener'
}

export type ScenarioName = 'fanout' | 'small-rooms' | 'ingest' | 'memory' | 'connect' | 'rest'

/** Latency percentiles in milliseconds; null when nothing was measured. */
export interface Percentiles { readonly p50: number | null, readonly p90: number | null, readonly p99: number | null, readonly max: number | null }

/**
 * One measured step: one server, one scenario, one load level. Every figure is optional because
 * scenarios measure different things; what a scenario fills in is listed in its module.
 */
export interface ResultRow {
  readonly scenario: ScenarioName
  readonly server: ServerName
  /** What the step offered, in words: "200 msg/s", "15,000 sockets", "GET /health". */
  readonly step: string
  /** Offered load in its own unit (messages/s, sockets, connections), for sorting and charts. */
  readonly offered: number
  /** Send → `message` at each receiver. */
  readonly delivery?: Percentiles
  /** Send → `ack` at the sender (stored and acked where the server stores). */
  readonly ack?: Percentiles
  /** HTTP request latency (REST). */
  readonly request?: Percentiles
  readonly messagesPerSecond?: number
  readonly deliveriesPerSecond?: number
  readonly requestsPerSecond?: number
  readonly upgradesPerSecond?: number
  /** Server CPU (user + system, /proc/<pid>/stat) per delivered frame, in microseconds. */
  readonly cpuUsPerDelivery?: number
  /** Server CPU per acked (and, where the server stores, stored) message, in microseconds. */
  readonly cpuUsPerMessage?: number
  /** Database backends' CPU per stored message (real Postgres only), in microseconds. */
  readonly databaseCpuUsPerMessage?: number
  readonly cpuUsPerRequest?: number
  readonly cpuUsPerUpgrade?: number
  /** Server RSS growth per socket, in KB. */
  readonly rssKbPerSocket?: number
  readonly serverCpuPercent?: number
  /** Share of the server's CPU spent in the kernel (%): on loopback, sending is mostly kernel time. */
  readonly serverKernelShare?: number
  readonly serverRssMb?: number
  /** The load generator's own CPU over the step, in % of one core. */
  readonly generatorCpuPercent: number
  /** The generator, not the server, may have been the limit (its CPU near a full core, or it fell behind). */
  readonly generatorBound: boolean
  /** Messages (or requests, sockets) that failed, were refused or never answered. */
  readonly failures: number
  /** Anything that makes the figures less trustworthy, in words. */
  readonly notes: readonly string[]
}

/** A target from the issue, checked against the run's own figures. */
export interface TargetCheck {
  readonly target: string
  readonly measured: string
  /** null when the run did not measure what the target needs. */
  readonly met: boolean | null
}

export interface BenchRun {
  readonly date: string
  readonly profile: 'quick' | 'full' | 'smoke'
  readonly database: 'embedded' | 'postgres'
  readonly machine: { readonly cpus: number, readonly node: string, readonly cpuModel: string }
  readonly durationSeconds: number
  readonly rows: readonly ResultRow[]
  readonly targets: readonly TargetCheck[]
  /** Scenarios that could not run and why (a server that failed to start, say). */
  readonly skipped: ReadonlyArray<{ readonly scenario: ScenarioName, readonly server?: ServerName, readonly reason: string }>
}
