// Our server as the WebSocket benches run it: the real server (uWS listener, /ws gateway, REST) on
// 127.0.0.1 and a free port, with N users seeded directly in the database (one socket each), the
// fan-out room all of them belong to, one ingest room per user and public rooms of 10 (fixture.ts).
// `node dist/bench/ws-server.js [--users 100] [--port 0] [--seed yes]`; prints {"port": N, "users": [{id, username}, …]}
// when ready. DATABASE_URL (when set) is used as is: bench/server-process.ts creates a fresh database
// for the run. `--seed no` (further nodes of a cluster on a database another node seeded) reads the
// users back instead of inserting them; REDIS_URL, when set, is passed through as is.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { loadConfig } from '../src/config.js'
import { loggerOptions } from '../src/logger.js'
import { startServer } from '../src/server.js'
import { BENCH_SECRET, BENCH_USER, SMALL_ROOM_SIZE, WS_FANOUT_ROOM, WS_SERVER_ENV, WS_USER_PREFIX, wsIngestRoom, wsSmallRoom } from './fixture.js'
import { argument, serveUntilSignalled } from './server-lifecycle.js'

const USERS = Number(argument('users', '100'))
const PORT = Number(argument('port', '0'))
const SEED = argument('seed', 'yes')
if (!Number.isInteger(USERS) || USERS < 2 || USERS > 20_000 || !Number.isInteger(PORT) || PORT < 0 || PORT > 65_535 || !['yes', 'no'].includes(SEED)) {
  throw new Error('usage: ws-server [--users 2..20000] [--port 0..65535] [--seed yes|no]')
}
/** Rows per INSERT: Postgres takes at most 65,535 parameters per statement. */
const CHUNK = 5000

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
}

serveUntilSignalled({ port: server.port, users: users.map((u) => ({ id: String(u.id), username: u.username })) }, async () => {
  try {
    await server.close()
  } finally {
    if (ownDataDir !== null) rmSync(ownDataDir, { recursive: true, force: true })
  }
})
