/** The data bench servers are seeded with, shared by the server process and the load generator. */
export const BENCH_USER = { username: 'bench_user', password: 'bench-password-1' }
/** Logins rotate over this many users (bench_user_0…), as real logins come from different people. */
export const LOGIN_USERS = 64
export const SEEDED_MESSAGES = 1000
export const BENCH_SECRET = 'bench-secret-bench-secret-bench-secret-0123'

/** WebSocket scenarios (`ws-server.ts`, `scenarios/`): one user per socket, named `ws_bench_<i>`. */
export const WS_USER_PREFIX = 'ws_bench_'
/** The room every socket joins for the fan-out phase: each message goes to every other socket. */
export const WS_FANOUT_ROOM = 'bench-fanout'
/** Socket i's own room for the ingest scenario: `bench-ingest-<i>`, no other member. */
export function wsIngestRoom (index: number): string { return `bench-ingest-${index}` }
/**
 * Socket i's room for the reads scenario, authored by user i and seeded with messages only when that
 * scenario runs (`ws-server.ts --read-rooms`): socket i reads room i + 1 and gets the receipts of room i.
 */
export function wsReadRoom (index: number): string { return `bench-read-${index}` }
/** Sockets per room in the many-small-rooms and idle-memory scenarios. */
export const SMALL_ROOM_SIZE = 10
/** Socket i's small room: sockets 0-9 share `bench-small-0`, 10-19 `bench-small-1`, … */
export function wsSmallRoom (index: number): string { return `bench-small-${Math.floor(index / SMALL_ROOM_SIZE)}` }
/**
 * The gateway's per-socket token bucket and the log level for a load test; the defaults (50 frames/s,
 * burst 100) would throttle the bench. Values already in the environment win.
 */
export const WS_SERVER_ENV: Readonly<Record<string, string>> = { WS_RATE: '100000', WS_BURST: '100000', LOG_LEVEL: 'error' }
