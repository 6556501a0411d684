// The shape of one `npm run bench` run, as written to bench/results/<date>.json and read by the
// table, the chart and the smoke test.

/** The servers a run measures: ours, and the peers in bench/peers/. */
export const SERVERS = ['chat', 'chat-cluster', 'uws-raw', 'socketio', 'uws-pg-insert', 'chat-fastify-listener', 'http-pg-history'] as const
export type ServerName = typeof SERVERS[number]

export const SERVER_LABELS: Readonly<Record<ServerName, string>> = {
  chat: 'this server',
  'chat-cluster': 'this server, nodes on Redis',
  'uws-raw': 'raw uWS pub/sub',
  socketio: 'Socket.IO 4',
  'uws-pg-insert': 'hand-written uWS + INSERT per message',
  'chat-fastify-listener': 'same Fastify app, own listener',
  'http-pg-history': 'hand-written node:http + pg'
}

/** The servers one process serves sockets for: not the REST-only ones, not the cluster (which starts its own). */
export type WebSocketServerName = Exclude<ServerName, 'chat-fastify-listener' | 'chat-cluster' | 'http-pg-history'>

/** The scenarios a run can select (`--only`). */
export type ScenarioName = 'fanout' | 'small-rooms' | 'ingest' | 'reads' | 'memory' | 'connect' | 'rest' | 'cluster'

/** What a row measured: a scenario, or one of the cluster scenario's three parts (each its own table). */
export type RowScenario = Exclude<ScenarioName, 'cluster'> | 'cluster-latency' | 'cluster-cpu' | 'cluster-outage'

/** Every receiver's `message` seqs against what its room acked (the cluster scenario checks them). */
export interface SequenceCheck {
  readonly receivers: number
  /** Deliveries due: for each receiver, every acked message of its room it did not send itself. */
  readonly expected: number
  /** Acked messages a receiver never got. */
  readonly lost: number
  /** Seqs a receiver got more than once (or got as `message` although it sent them). */
  readonly duplicated: number
  /** Seqs that arrived after a higher one. */
  readonly outOfOrder: number
  /** Sockets the server closed while they were in use (each misses what came after). */
  readonly closed: number
}

/** What a Redis outage cost, seen from the sockets (the cluster scenario's third part). */
export interface OutageFigures {
  /** From SIGTERM to the restarted redis-server answering PING. */
  readonly seconds: number
  /** Messages sent during the outage, and acks that arrived during it: the database was up. */
  readonly sentDuring: number
  readonly ackedDuring: number
  /** Send → ack of the messages sent during the outage. */
  readonly ackDuring: Percentiles
  /** Deliveries due to receivers on another node than the sender, of messages sent during the outage. */
  readonly crossNodeDue: number
  /** Of those, delivered before Redis was back (the nodes' periodic database checks). */
  readonly deliveredDuring: number
  /** Of those, delivered only after Redis was back (the repair from the database). */
  readonly deliveredAfter: number
  /** Send → message of those deliveries, wherever they came from. */
  readonly crossNodeDelivery: Percentiles
  /** Per receiver on another node than some sender: how many it got only after Redis was back. */
  readonly perReceiverAfter: { readonly receivers: number, readonly mean: number, readonly max: number }
  /** Redis back → every receiver holds every message acked before then; null if some never arrived. */
  readonly repairMs: number | null
}

/** Latency percentiles in milliseconds; null when nothing was measured. */
export interface Percentiles { readonly p50: number | null, readonly p90: number | null, readonly p99: number | null, readonly max: number | null }

/**
 * One measured step: one server, one scenario, one load level. Every figure is optional because
 * scenarios measure different things; what a scenario fills in is listed in its module. In the
 * reads scenario's rows a message is a `read` frame: its ack the `read` reply, its deliveries the
 * `receipt`s.
 */
export interface ResultRow {
  readonly scenario: RowScenario
  readonly server: ServerName
  /** What the step offered, in words: "200 msg/s", "15,000 sockets", "GET /health". */
  readonly step: string
  /** Offered load in its own unit (messages/s, sockets, connections), for sorting and charts. */
  readonly offered: number
  /** Send → `message` at each receiver. */
  readonly delivery?: Percentiles
  /** Send → `ack` at the sender (stored and acked where the server stores). */
  readonly ack?: Percentiles
  /**
   * The server's event-loop delay over the step (ours only: `perf_hooks.monitorEventLoopDelay` in
   * bench/ws-server.ts, 10 ms resolution): how late its timers ran, what every socket waits on.
   */
  readonly eventLoopDelay?: Percentiles
  /** Mean size of a delivered `message` frame in bytes (our frames only), so CPU per frame compares like with like. */
  readonly frameBytes?: number
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
  /** Database backends' CPU per request (REST, real Postgres only), in microseconds. */
  readonly databaseCpuUsPerRequest?: number
  /** A cluster's Redis CPU per acked message, in microseconds. */
  readonly redisCpuUsPerMessage?: number
  /** Server processes whose CPU the row sums (a cluster's nodes). */
  readonly nodes?: number
  /** Sockets in the step. */
  readonly sockets?: number
  readonly sequence?: SequenceCheck
  readonly outage?: OutageFigures
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
