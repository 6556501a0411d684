// A server process for bench/ws-ingest.ts: the real server (uWS listener, /ws gateway, REST) on
// 127.0.0.1 and a free port, with N users seeded directly in the database (one socket each), the
// fan-out room all of them belong to and one ingest room per user.
// `node dist/bench/ws-server.js [--users 100]`; prints {"port": N, "users": [{id, username}, …]} when ready.
// DATABASE_URL (when set) is used as is: the load generator creates a fresh database for the run.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { loadConfig } from '../src/config.js'
import { loggerOptions } from '../src/logger.js'
import { startServer } from '../src/server.js'
import { BENCH_SECRET, BENCH_USER, WS_FANOUT_ROOM, WS_SERVER_ENV, WS_USER_PREFIX, wsIngestRoom } from './fixture.js'

const usersArg = process.argv.indexOf('--users')
const USERS = usersArg > 0 ? Number(process.argv[usersArg + 1]) : 100
if (!Number.isInteger(USERS) || USERS < 2 || USERS > 10_000) throw new Error('usage: ws-server [--users 2..10000]')

const ownDataDir = process.env.DATA_DIR === undefined ? mkdtempSync(join(tmpdir(), 'chat-bench-ws-')) : null
const config = loadConfig({
  ...WS_SERVER_ENV,
  ...process.env,
  HOST: '127.0.0.1',
  PORT: '0',
  DATA_DIR: ownDataDir ?? process.env.DATA_DIR,
  JWT_SECRET: BENCH_SECRET
})

// Errors go to stderr (the load generator passes it through); stdout carries only the ready line.
const server = await startServer(config, pino(loggerOptions(config.log.level), pino.destination(2)))
let stopping = false
const stop = (): void => {
  if (stopping) return
  stopping = true
  const exit = (code: number): void => {
    if (ownDataDir !== null) rmSync(ownDataDir, { recursive: true, force: true })
    process.exit(code)
  }
  server.close().then(() => exit(0), (error: unknown) => {
    process.stderr.write(`ws-server: close failed: ${String(error)}\n`)
    exit(1)
  })
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
// Started with --expose-gc (bench/ws-server-process.ts does), SIGUSR2 runs a full GC: memory figures
// then count what is held, not garbage not yet collected.
const { gc } = globalThis as { gc?: () => void }
if (gc !== undefined) process.on('SIGUSR2', () => { gc() })

const { db } = server.app
// One hash serves every user: the load generator signs its own tokens and never logs in.
const passwordHash = await server.app.passwords.hash(BENCH_USER.password)
const users = await db.insertInto('users')
  .values(Array.from({ length: USERS }, (_, i) => ({ username: `${WS_USER_PREFIX}${i}`, password_hash: passwordHash })))
  .returning(['id', 'username'])
  .execute()
users.sort((a, b) => Number(a.id) - Number(b.id))
await db.insertInto('rooms')
  .values([
    { id: WS_FANOUT_ROOM, title: 'WebSocket bench: fan-out', private: false },
    ...users.map((_, i) => ({ id: wsIngestRoom(i), title: `WebSocket bench: ingest ${i}`, private: false }))
  ])
  .execute()
// Public rooms need no membership to join, but real members are what a chat room has.
await db.insertInto('room_members')
  .values([
    ...users.map((user) => ({ room_id: WS_FANOUT_ROOM, user_id: user.id })),
    ...users.map((user, i) => ({ room_id: wsIngestRoom(i), user_id: user.id }))
  ])
  .execute()
process.stdout.write(`${JSON.stringify({ port: server.port, users: users.map((u) => ({ id: String(u.id), username: u.username })) })}\n`)
