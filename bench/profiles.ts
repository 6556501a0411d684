// How big and how long each scenario runs. `quick` (the default) keeps `npm run bench` under three
// minutes with smaller socket counts and short steps; `full` is the scenarios at full size;
// `smoke` is the tiny end-to-end run `npm test` makes (test/integration/bench-smoke.test.ts); it
// leaves the cluster out (several server processes and a Redis outage would add about 40 s).
import type { ScenarioName } from './report/results.js'

export interface Profile {
  readonly name: 'quick' | 'full' | 'smoke'
  readonly scenarios: readonly ScenarioName[]
  /** One room, every socket in it, rising publish rates (messages/s in). */
  readonly fanout: { readonly sockets: number, readonly rates: readonly number[] }
  /** Rooms of 10, every socket in one, rates in messages/s over all rooms. */
  readonly smallRooms: { readonly sockets: number, readonly rates: readonly number[] }
  /** Each socket in a room of its own, rising rates until ack p99 passes 25 ms or a message is lost. */
  readonly ingest: { readonly sockets: number, readonly rates: readonly number[] }
  /**
   * Each socket (at least 2) reading another's room, rates in reads/s over all sockets, until the
   * reply's p99 passes 50 ms. The server seeds every room with the reads one socket sends over the
   * whole ramp: 100 sockets at the full profile's rates are about 790,000 messages.
   */
  readonly reads: { readonly sockets: number, readonly rates: readonly number[] }
  readonly memory: { readonly sockets: number }
  readonly connect: { readonly sockets: number, readonly concurrency: number }
  readonly rest: { readonly seconds: number }
  /** Several nodes of ours on one Postgres and a Redis of the run's own (bench/scenarios/cluster.ts). */
  readonly cluster: ClusterProfile
  readonly stepSeconds: number
  readonly warmupSeconds: number
  readonly drainSeconds: number
}

/** A steady rate for a while: `rate` messages/s in, over all rooms. */
export interface SteadyLoad { readonly sockets: number, readonly rate: number, readonly seconds: number }

export interface ClusterProfile {
  readonly nodes: number
  /** Rooms of 10, the sender on node 1 with 3 receivers, 6 receivers on the other nodes: same-node vs cross-node delivery. */
  readonly latency: SteadyLoad
  /** One room, the sockets and senders spread over the nodes, then the same on one node: CPU per delivered frame. */
  readonly cpu: SteadyLoad
  /** Rooms of 10 spread over the nodes, a sender on each node in every room; Redis stopped for `outageSeconds`. */
  readonly outage: { readonly sockets: number, readonly rate: number, readonly beforeSeconds: number, readonly outageSeconds: number, readonly afterSeconds: number }
  /** How long after the last send every receiver may take to hold every acked message. */
  readonly settleSeconds: number
}

const ALL: readonly ScenarioName[] = ['fanout', 'small-rooms', 'ingest', 'reads', 'memory', 'connect', 'rest', 'cluster']

export const PROFILES: Readonly<Record<Profile['name'], Profile>> = {
  quick: {
    name: 'quick',
    scenarios: ALL,
    fanout: { sockets: 1000, rates: [20, 50, 100] },
    smallRooms: { sockets: 3000, rates: [1000, 5000] },
    // Fine steps where the one-INSERT-per-message peer runs out (about 3,000/s), coarse ones above.
    ingest: { sockets: 200, rates: [1000, 2000, 3000, 4000, 5000, 7500, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000] },
    reads: { sockets: 100, rates: [1000, 2500, 5000, 10_000, 20_000] },
    // The count; the process file limit here is 20,000.
    memory: { sockets: 19_000 },
    connect: { sockets: 2000, concurrency: 100 },
    rest: { seconds: 3 },
    cluster: {
      nodes: 3,
      latency: { sockets: 300, rate: 200, seconds: 5 },
      // 299 receivers at 50 msg/s: about 15,000 frames/s, well within the generator.
      cpu: { sockets: 300, rate: 50, seconds: 5 },
      outage: { sockets: 150, rate: 150, beforeSeconds: 2, outageSeconds: 5, afterSeconds: 3 },
      settleSeconds: 20
    },
    stepSeconds: 3,
    warmupSeconds: 1,
    drainSeconds: 5
  },
  full: {
    name: 'full',
    scenarios: ALL,
    fanout: { sockets: 1000, rates: [10, 20, 50, 100, 200, 400] },
    smallRooms: { sockets: 10_000, rates: [1000, 5000, 10_000, 20_000] },
    ingest: { sockets: 200, rates: [1000, 2000, 3000, 4000, 5000, 6000, 8000, 10_000, 12_500, 15_000, 17_500, 20_000, 25_000, 30_000, 35_000, 40_000] },
    reads: { sockets: 100, rates: [1000, 2500, 5000, 10_000, 15_000, 20_000, 25_000] },
    memory: { sockets: 19_000 },
    connect: { sockets: 10_000, concurrency: 100 },
    rest: { seconds: 10 },
    cluster: {
      nodes: 3,
      latency: { sockets: 1500, rate: 1000, seconds: 15 },
      cpu: { sockets: 1000, rate: 40, seconds: 10 },
      outage: { sockets: 600, rate: 500, beforeSeconds: 5, outageSeconds: 5, afterSeconds: 5 },
      settleSeconds: 30
    },
    stepSeconds: 10,
    warmupSeconds: 2,
    drainSeconds: 10
  },
  smoke: {
    name: 'smoke',
    scenarios: ['fanout', 'ingest', 'reads'],
    // Sized so every process measured spends several 10 ms /proc ticks in a step: raw uWS needs
    // about 10,000 deliveries for 50 ms. Ingest stays where PGlite (2 ms a transaction) serves one
    // INSERT per message with room to spare.
    fanout: { sockets: 20, rates: [400] },
    smallRooms: { sockets: 20, rates: [50] },
    ingest: { sockets: 10, rates: [200] },
    // 400 reads: 40 seeded messages per room.
    reads: { sockets: 10, rates: [200] },
    memory: { sockets: 50 },
    connect: { sockets: 50, concurrency: 10 },
    rest: { seconds: 1 },
    // Not in `scenarios` (see the top): the smoke run leaves the cluster out.
    cluster: {
      nodes: 3,
      latency: { sockets: 30, rate: 50, seconds: 2 },
      cpu: { sockets: 30, rate: 50, seconds: 2 },
      outage: { sockets: 30, rate: 50, beforeSeconds: 1, outageSeconds: 5, afterSeconds: 1 },
      settleSeconds: 15
    },
    stepSeconds: 2,
    warmupSeconds: 0,
    drainSeconds: 5
  }
}
