// Peer: Socket.IO 4, the common choice, written the way its docs suggest: a JWT checked in an
// `io.use` middleware, rooms with `socket.join`, `socket.to(room).emit` for fan-out, acks by
// callback. With `--store`, each message is first written with one INSERT (the common pattern, and
// what our group commit is measured against): on the run's Postgres database when DATABASE_URL is
// set, otherwise on an embedded database like ours (PGlite in a worker thread, one connection).
// `node dist/bench/peers/socketio.js [--store]`; prints {"port": N} when ready.
import { createHmac, timingSafeEqual } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { Server, type DefaultEventsMap } from 'socket.io'
import { startEmbeddedPostgres } from '../../db/embedded.js'
import { BENCH_SECRET } from '../fixture.js'
import { serveUntilSignalled } from '../server-lifecycle.js'

interface Claims { sub: string, username: string, exp: number }
interface Incoming { room?: unknown, body?: unknown, clientMsgId?: unknown }
type Reply = (answer: object) => void

const STORE = process.argv.includes('--store')

/** HS256 as @fastify/jwt checks it for our server: signature, then expiry. */
function verifyToken (token: unknown): Claims | null {
  if (typeof token !== 'string') return null
  const [header, payload, signature] = token.split('.')
  if (header === undefined || payload === undefined || signature === undefined) return null
  const expected = createHmac('sha256', BENCH_SECRET).update(`${header}.${payload}`).digest()
  const given = Buffer.from(signature, 'base64url')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Claims
  return claims.exp * 1000 > Date.now() ? claims : null
}

async function openStore (): Promise<{ pool: pg.Pool, close: () => Promise<void> }> {
  const url = process.env.DATABASE_URL ?? ''
  let pool: pg.Pool
  let closeDatabase = async (): Promise<void> => {}
  if (url !== '') {
    pool = new pg.Pool({ connectionString: url, max: 10 })
  } else {
    const dataDir = mkdtempSync(join(tmpdir(), 'chat-bench-socketio-'))
    const embedded = await startEmbeddedPostgres(dataDir)
    pool = new pg.Pool({ host: embedded.socketDir, port: embedded.port, user: 'postgres', database: 'postgres', max: 1 })
    closeDatabase = async () => {
      await embedded.stop()
      rmSync(dataDir, { recursive: true, force: true })
    }
  }
  await pool.query(`create table if not exists messages (
    id bigserial primary key, room text not null, seq integer not null, user_id text not null,
    body text not null, client_msg_id text, created_at timestamptz not null default now(), unique (room, seq))`)
  return { pool, close: async () => { await pool.end(); await closeDatabase() } }
}

const store = STORE ? await openStore() : null
const seqs = new Map<string, number>()
let ids = 0

const http = createServer()
// Typed socket.data: the middleware stores the verified claims there.
const io = new Server<DefaultEventsMap, DefaultEventsMap, DefaultEventsMap, { user: Claims }>(http, { transports: ['websocket'], serveClient: false, maxHttpBufferSize: 64 * 1024 })

io.use((socket, next) => {
  const claims = verifyToken((socket.handshake.auth as { token?: unknown }).token)
  if (claims === null) { next(new Error('unauthorized')); return }
  socket.data.user = claims
  next()
})

io.on('connection', (socket) => {
  const user = socket.data.user
  socket.on('join', (room: unknown, reply: Reply) => {
    if (typeof room !== 'string') return
    void socket.join(room)
    reply({ room, lastSeq: seqs.get(room) ?? 0 })
  })
  socket.on('message', (frame: Incoming, reply: Reply) => {
    if (typeof frame?.room !== 'string' || typeof frame.body !== 'string') return
    const room = frame.room
    if (!socket.rooms.has(room)) return
    const seq = (seqs.get(room) ?? 0) + 1
    seqs.set(room, seq)
    const clientMsgId = typeof frame.clientMsgId === 'string' ? frame.clientMsgId : null
    const deliver = (id: string, createdAt: string): void => {
      socket.to(room).emit('message', { id, room, seq, userId: user.sub, username: user.username, body: frame.body, clientMsgId, createdAt })
      reply({ room, id, seq, clientMsgId, createdAt })
    }
    if (store === null) {
      deliver(String(++ids), new Date().toISOString())
      return
    }
    store.pool.query<{ id: string, created_at: Date }>(
      'insert into messages (room, seq, user_id, body, client_msg_id) values ($1, $2, $3, $4, $5) returning id, created_at',
      [room, seq, user.sub, frame.body, clientMsgId]
    ).then(({ rows: [row] }) => { deliver(row!.id, row!.created_at.toISOString()) }, (error: unknown) => {
      process.stderr.write(`socketio peer: insert failed: ${String(error)}\n`)
    })
  })
})

const port = await new Promise<number>((resolve) => {
  http.listen(0, '127.0.0.1', () => { resolve((http.address() as { port: number }).port) })
})
serveUntilSignalled({ port }, async () => {
  await io.close()
  await store?.close()
})
