// How big and how long each scenario runs. `quick` (the default) keeps `npm run bench` under three
// minutes with smaller socket counts and short steps; `full` is the scenarios at full size;
// `smoke` is the tiny end-to-end run `npm test` makes (test/integration/bench-smoke.test.ts).
import type { ScenarioName } from './report/results.js'

export interface Profile {
  readonly name: 'quick' | 'full' | 'smoke'
  readonly scenarios: readonly ScenarioName[]
  /** One room, every socket in it, rising publish rates (messages/s in). */
  readonly fanout: { readonly sockets: number, readonly rates: readonly number[] }
  /** Rooms of 10, every socket in one, rates in messages/s over all rooms. */
  readonly smallRooms: { readonly sockets: number, readonly rates: readonly number[] }
  /** Each socket in a room of its own, rising rates until ack p99 passes 50 ms. */
  readonly ingest: { readonly sockets: number, readonly rates: readonly number[] }
  readonly memory: { readonly sockets: number }
  readonly connect: { readonly sockets: number, readonly concurrency: number }
  readonly rest: { readonly seconds: number }
  readonly stepSeconds: number
  readonly warmupSeconds: number
  readonly drainSeconds: number
}

const ALL: readonly ScenarioName[] = ['fanout', 'small-rooms', 'ingest', 'memory', 'connect', 'rest']

export const PROFILES: Readonly<Record<Profile['name'], Profile>> = {
  quick: {
    name: 'quick',
    scenarios: ALL,
    fanout: { sockets: 1000, rates: [20, 50, 100] },
    smallRooms: { sockets: 3000, rates: [1000, 5000] },
    ingest: { sockets: 100, rates: [1000, 2500, 5000, 10_000, 15_000, 20_000, 25_000] },
    memory: { sockets: 10_000 },
    connect: { sockets: 2000, concurrency: 100 },
    rest: { seconds: 3 },
    stepSeconds: 3,
    warmupSeconds: 1,
    drainSeconds: 5
  },
  full: {
    name: 'full',
    scenarios: ALL,
    fanout: { sockets: 1000, rates: [10, 20, 50, 100, 200, 400] },
    smallRooms: { sockets: 10_000, rates: [1000, 5000, 10_000, 20_000] },
    ingest: { sockets: 100, rates: [1000, 2000, 3000, 4000, 6000, 8000, 10_000, 12_000, 14_000, 16_000, 18_000, 20_000, 22_000, 25_000, 30_000] },
    memory: { sockets: 15_000 },
    connect: { sockets: 10_000, concurrency: 100 },
    rest: { seconds: 10 },
    stepSeconds: 10,
    warmupSeconds: 2,
    drainSeconds: 10
  },
  smoke: {
    name: 'smoke',
    scenarios: ['fanout', 'ingest'],
    // Sized so every process measured spends several 10 ms /proc ticks in a step: raw uWS needs
    // about 10,000 deliveries for 50 ms. Ingest stays where PGlite (2 ms a transaction) serves one
    // INSERT per message with room to spare.
    fanout: { sockets: 20, rates: [400] },
    smallRooms: { sockets: 20, rates: [50] },
    ingest: { sockets: 10, rates: [200] },
    memory: { sockets: 50 },
    connect: { sockets: 50, concurrency: 10 },
    rest: { seconds: 1 },
    stepSeconds: 2,
    warmupSeconds: 0,
    drainSeconds: 5
  }
}
