// Our server as the WebSocket benches run it: the real server (uWS listener, /ws gateway, REST) on
// 127.0.0.1 and a free port, with N users seeded directly in the database (one socket each), the
// fan-out room all of them belong to, one ingest room per user and public rooms of 10 (fixture.ts);
// with `--read-rooms K --read-messages N`, also K rooms of N messages each for the reads scenario.
// `node dist/bench/ws-server.js [--users 100] [--port 0] [--seed yes] [--read-rooms 0] [--read-messages 0]`;
// prints {"port": N, "users": [{id, username}, …], "tokenClaims": {…}} when ready: tokenClaims are
// what every token it issues carries besides the user and the times (the database it is bound to),
// so the load generator can sign its users' tokens without logging each one in. DATABASE_URL (when set) is used as is: bench/server-process.ts creates a fresh database
// for the run. `--seed no` (further nodes of a cluster on a database another node seeded) reads the
// users back instead of inserting them; REDIS_URL, when set, is passed through as is.
// Asked `loop-delay:start` and `loop-delay:stop` over IPC (server-lifecycle.ts), it measures its
// event-loop delay in between and answers the percentiles in ms: how late its timers ran, so how
// long any socket's frame may have waited for the loop (the embedded database's worker included).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { sql } from 'kysely'
import { pino } from 'pino'
import { loadConfig } from '../src/config.js'
import { loggerOptions } from '../src/logger.js'
import { startServer } from '../src/server.js'
import { BENCH_SECRET, BENCH_USER, SMALL_ROOM_SIZE, WS_FANOUT_ROOM, WS_SERVER_ENV, WS_USER_PREFIX, wsIngestRoom, wsReadRoom, wsSmallRoom } from './fixture.js'
import { argument, serveUntilSignalled } from './server-lifecycle.js'
import type { Percentiles } from './report/results.js'

const USERS = Number(argument('users', '100'))
const PORT = Number(argument('port', '0'))
const SEED = argument('seed', 'yes')
const READ_ROOMS = Number(argument('read-rooms', '0'))
const READ_MESSAGES = Number(argument('read-messages', '0'))
if (!Number.isInteger(USERS) || USERS < 2 || USERS > 20_000 || !Number.isInteger(PORT) || PORT < 0 || PORT > 65_535 || !['yes', 'no'].includes(SEED) ||
  !Number.isInteger(READ_ROOMS) || READ_ROOMS < 0 || READ_ROOMS > USERS || !Number.isInteger(READ_MESSAGES) || READ_MESSAGES < 0 || READ_MESSAGES > 10_000_000) {
  throw new Error('usage: ws-server [--users 2..20000] [--port 0..65535] [--seed yes|no] [--read-rooms 0..users] [--read-messages 0..10000000]')
}
/** Rows per INSERT: Postgres takes at most 65,535 parameters per statement. */
const CHUNK = 5000
/** The body of every message of the read rooms: what a read covers does not depend on it. */
const READ_BODY = 'a seeded message for the reads scenario, of about the length of a typical chat line'

const ownDataDir = process.env.DATA_DIR === undefined ? mkdtempSync(join(tmpdir(), 'chat-bench-ws-')) : null
const config = loadConfig({
  ...WS_SERVER_ENV,
  ...process.env,
  HOST: '127.0.0.1',
  PORT: String(PORT),
  DATA_DIR: ownDataDir ?? process.env.DATA_DIR,
  JWT_SECRET: BENCH_SECRET
})

// Errors go to stderr (the load generator passes it through); stdout carries only the ready line.
const server = await startServer(config, pino(loggerOptions(config.log.level), pino.destination(2)))
const { db } = server.app

async function insertChunked<T> (rows: readonly T[], insert: (chunk: T[]) => Promise<unknown>): Promise<void> {
  for (let at = 0; at < rows.length; at += CHUNK) await insert(rows.slice(at, at + CHUNK))
}

const users: Array<{ id: string, username: string }> = []
if (SEED === 'yes') await seed()
else users.push(...(await db.selectFrom('users').select(['id', 'username']).where('username', 'like', `${WS_USER_PREFIX}%`).execute()).sort((a, b) => Number(a.id) - Number(b.id)))

async function seed (): Promise<void> {
  // One hash serves every user: the load generator signs its own tokens and never logs in.
  const passwordHash = await server.app.passwords.hash(BENCH_USER.password)
  await insertChunked(Array.from({ length: USERS }, (_, i) => ({ username: `${WS_USER_PREFIX}${i}`, password_hash: passwordHash })), async (chunk) => {
    users.push(...await db.insertInto('users').values(chunk).returning(['id', 'username']).execute())
  })
  users.sort((a, b) => Number(a.id) - Number(b.id))
  const smallRooms = Math.ceil(USERS / SMALL_ROOM_SIZE)
  await insertChunked([
    { id: WS_FANOUT_ROOM, title: 'WebSocket bench: fan-out', private: false },
    ...users.map((_, i) => ({ id: wsIngestRoom(i), title: `WebSocket bench: ingest ${i}`, private: false })),
    ...Array.from({ length: smallRooms }, (_, k) => ({ id: wsSmallRoom(k * SMALL_ROOM_SIZE), title: `WebSocket bench: small room ${k}`, private: false }))
  ], async (chunk) => await db.insertInto('rooms').values(chunk).execute())
  // Public rooms need no membership to join, but real members are what a chat room has.
  await insertChunked([
    ...users.map((user) => ({ room_id: WS_FANOUT_ROOM, user_id: user.id })),
    ...users.map((user, i) => ({ room_id: wsIngestRoom(i), user_id: user.id })),
    ...users.map((user, i) => ({ room_id: wsSmallRoom(i), user_id: user.id }))
  ], async (chunk) => await db.insertInto('room_members').values(chunk).execute())
  if (READ_ROOMS > 0) await seedReadRooms(users.slice(0, READ_ROOMS))
}

/** Read room i, written by user i: `READ_MESSAGES` messages, so every read of the scenario moves a position by one. */
async function seedReadRooms (authors: ReadonlyArray<{ id: string }>): Promise<void> {
  const rooms = authors.map((_, i) => wsReadRoom(i))
  await insertChunked(authors.map((_, i) => ({ id: rooms[i]!, title: `WebSocket bench: reads ${i}`, private: false, last_seq: READ_MESSAGES })),
    async (chunk) => await db.insertInto('rooms').values(chunk).execute())
  await insertChunked(authors.map((user, i) => ({ room_id: rooms[i]!, user_id: user.id })),
    async (chunk) => await db.insertInto('room_members').values(chunk).execute())
  // Generated by the database in one statement: the rooms may hold a million messages between them.
  await db.insertInto('messages')
    .columns(['room_id', 'seq', 'user_id', 'body'])
    .expression(sql`select r.room_id, s.seq, r.user_id, ${READ_BODY}
      from unnest(${rooms}::text[], ${authors.map((user) => user.id)}::int8[]) as r(room_id, user_id)
      cross join generate_series(1, ${READ_MESSAGES}::int8) as s(seq)`)
    .execute()
}

/**
 * The claims the server puts in every token it issues besides the user's own and the times: taken
 * from a token it signs, so the generator's tokens follow whatever the server requires.
 */
function serverTokenClaims (): Record<string, unknown> {
  const { sub, username, iat, exp, ...claims } = server.app.jwt.verify<Record<string, unknown>>(server.app.jwt.sign({ sub: '0', username: '' }))
  return claims
}

/** A timer every millisecond, only while a step measures: thousands of samples per step. */
const LOOP_DELAY_RESOLUTION_MS = 1
const loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS })

function loopDelayPercentiles (): Percentiles {
  // The histogram holds the time between the timer's runs (ns): the delay is what exceeds its
  // interval. In ms to 3 significant digits, as every latency the bench reports.
  const ms = (ns: number): number => Number(Math.max(0, ns / 1e6 - LOOP_DELAY_RESOLUTION_MS).toPrecision(3))
  if (loopDelay.count === 0) return { p50: null, p90: null, p99: null, max: null }
  return { p50: ms(loopDelay.percentile(50)), p90: ms(loopDelay.percentile(90)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) }
}

serveUntilSignalled({ port: server.port, users: users.map((u) => ({ id: String(u.id), username: u.username })), tokenClaims: serverTokenClaims() }, async () => {
  try {
    await server.close()
  } finally {
    if (ownDataDir !== null) rmSync(ownDataDir, { recursive: true, force: true })
  }
}, {
  'loop-delay:start': () => {
    loopDelay.reset()
    loopDelay.enable()
    return true
  },
  'loop-delay:stop': () => {
    loopDelay.disable()
    return loopDelayPercentiles()
  }
})
