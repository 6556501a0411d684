// A server process for bench/scenarios/rest.ts: the real server (uWS front, `uws`) or the same
// Fastify app on its own listener (`fastify`), seeded with users and a room history. Prints
// {"port": N} when ready. Both modes can share one database: the second finds it seeded.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { startServer } from '../src/server.js'
import { BENCH_SECRET, BENCH_USER, LOGIN_USERS, SEEDED_MESSAGES } from './fixture.js'
import { serveUntilSignalled } from './server-lifecycle.js'

const mode = process.argv[2]
if (mode !== 'uws' && mode !== 'fastify') throw new Error('usage: rest-server uws|fastify')

const ownDataDir = process.env.DATA_DIR === undefined ? mkdtempSync(join(tmpdir(), 'chat-bench-rest-')) : null
const config = loadConfig({
  ...process.env,
  HOST: '127.0.0.1',
  PORT: '0',
  LOG_LEVEL: 'error',
  DATA_DIR: ownDataDir ?? process.env.DATA_DIR,
  JWT_SECRET: BENCH_SECRET
})

let port: number
let app: FastifyInstance
let close: () => Promise<void>
if (mode === 'uws') {
  const server = await startServer(config, false)
  app = server.app
  port = server.port
  close = async () => { await server.close() }
} else {
  app = await buildApp(config, { logger: false })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  port = typeof address === 'object' && address !== null ? address.port : 0
  close = async () => { await app.close() }
}

const { db } = app
// One hash serves every seeded user: they share the password, and hashing 64 times would take a while.
const passwordHash = await app.passwords.hash(BENCH_USER.password)
const user = await db.insertInto('users')
  .values({ username: BENCH_USER.username, password_hash: passwordHash })
  .onConflict((oc) => oc.doNothing())
  .returning('id')
  .executeTakeFirst()
await db.insertInto('users')
  .values(Array.from({ length: LOGIN_USERS }, (_, i) => ({ username: `${BENCH_USER.username}_${i}`, password_hash: passwordHash })))
  .onConflict((oc) => oc.doNothing())
  .execute()
if (user !== undefined) {
  const now = Date.now()
  const rows = Array.from({ length: SEEDED_MESSAGES }, (_, i) => ({
    room_id: 'general',
    seq: i + 1,
    user_id: user.id,
    body: `seeded message ${i + 1} with a body of typical chat length, about eighty bytes`,
    client_msg_id: null,
    created_at: new Date(now - (SEEDED_MESSAGES - i) * 1000)
  }))
  await db.insertInto('messages').values(rows).execute()
  await db.updateTable('rooms').set({ last_seq: SEEDED_MESSAGES }).where('id', '=', 'general').execute()
}
// Statistics as a database in use has them: on fresh tables the planner guesses a handful of rows
// and may sort the whole room for a page instead of walking the (room_id, seq) index backwards,
// until autovacuum analyzes them in the middle of a step.
await sql`analyze`.execute(db)
serveUntilSignalled({ port }, async () => {
  try {
    await close()
  } finally {
    if (ownDataDir !== null) rmSync(ownDataDir, { recursive: true, force: true })
  }
})
