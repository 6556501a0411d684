// Peer: the ingest path as a developer would write it by hand: uWebSockets.js speaking our frames
// (welcome, join → joined, message → ack + `message` to the room's other sockets), the JWT checked
// at the upgrade, a `pg` pool of 10, and one INSERT per message, acked once it has resolved. The
// room's seq comes from its row in the same statement (`update rooms … returning`, so the row lock
// orders a room's messages), into a `messages` table of the same shape as ours (keys, uniques and
// foreign keys). On the embedded database the pool has one connection (PGlite has one session).
// `node dist/bench/peers/uws-pg-insert.js --users N`: seeds users 1..N and their ingest rooms
// (fixture.ts), prints {"port": N} when ready.
import * as uws from 'uWebSockets.js'
import { WS_USER_PREFIX, wsIngestRoom } from '../fixture.js'
import { argument, serveUntilSignalled } from '../server-lifecycle.js'
import { verifyToken } from './jwt.js'
import { openPeerDatabase } from './peer-database.js'

interface Frame { type?: unknown, room?: unknown, body?: unknown, clientMsgId?: unknown, ref?: unknown }
interface User { readonly id: string, readonly username: string }
interface Stored { id: string, seq: string, created_at: Date }

const USERS = Number(argument('users', '100'))
if (!Number.isInteger(USERS) || USERS < 1 || USERS > 20_000) throw new Error('usage: uws-pg-insert [--users 1..20000]')

const database = await openPeerDatabase({ max: 10 })
const { pool } = database
await pool.query(`
  create table users (id bigserial primary key, username text not null unique);
  create table rooms (id text primary key, last_seq bigint not null default 0);
  create table messages (
    id bigserial primary key,
    room_id text not null references rooms (id),
    seq bigint not null,
    user_id bigint not null references users (id),
    body text not null,
    client_msg_id text,
    created_at timestamptz not null default now(),
    unique (room_id, seq),
    unique (room_id, user_id, client_msg_id))`)
await pool.query(`insert into users (username) select '${WS_USER_PREFIX}' || (i - 1) from generate_series(1, $1::int) as i order by i`, [USERS])
await pool.query('insert into rooms (id) select unnest($1::text[])', [Array.from({ length: USERS }, (_, i) => wsIngestRoom(i))])

const INSERT = `with room as (update rooms set last_seq = last_seq + 1 where id = $1 returning last_seq)
  insert into messages (room_id, seq, user_id, body, client_msg_id)
  select $1, last_seq, $2, $3, $4 from room
  returning id, seq, created_at`

const send = (ws: uws.WebSocket<User>, frame: object): void => { ws.send(JSON.stringify(frame)) }
const fail = (ws: uws.WebSocket<User>, code: string, ref: unknown): void => { send(ws, { type: 'error', code, message: code, ref }) }
/** A socket closed while its INSERT ran cannot be written to any more. */
const closed = new WeakSet<uws.WebSocket<User>>()

async function join (ws: uws.WebSocket<User>, room: string, ref: unknown): Promise<void> {
  const { rows: [found] } = await pool.query<{ last_seq: string }>('select last_seq from rooms where id = $1', [room])
  if (closed.has(ws)) return
  if (found === undefined) { fail(ws, 'not_found', ref); return }
  ws.subscribe(room)
  send(ws, { type: 'joined', room, lastSeq: Number(found.last_seq), online: [], ref })
}

async function message (ws: uws.WebSocket<User>, room: string, body: string, clientMsgId: string | null, ref: unknown): Promise<void> {
  const user = ws.getUserData()
  const { rows: [stored] } = await pool.query<Stored>(INSERT, [room, user.id, body, clientMsgId])
  if (closed.has(ws)) return
  if (stored === undefined) { fail(ws, 'not_found', ref); return }
  const id = stored.id
  const seq = Number(stored.seq)
  const createdAt = stored.created_at.toISOString()
  ws.publish(room, JSON.stringify({ type: 'message', id, room, seq, userId: user.id, username: user.username, body, clientMsgId, createdAt }))
  send(ws, { type: 'ack', room, id, seq, clientMsgId, createdAt, ref })
}

const app = uws.App().ws<User>('/ws', {
  compression: 0,
  maxPayloadLength: 64 * 1024,
  idleTimeout: 120,
  upgrade (res, req, context) {
    // `chat.v1, bearer.<token>`, as our server takes it.
    const protocols = req.getHeader('sec-websocket-protocol').split(',').map((protocol) => protocol.trim())
    const claims = verifyToken(protocols.find((protocol) => protocol.startsWith('bearer.'))?.slice('bearer.'.length))
    if (claims === null) {
      res.writeStatus('401 Unauthorized').end()
      return
    }
    res.upgrade<User>({ id: claims.sub, username: claims.username }, req.getHeader('sec-websocket-key'), protocols[0]!,
      req.getHeader('sec-websocket-extensions'), context)
  },
  open (ws) { send(ws, { type: 'welcome', user: ws.getUserData(), heartbeat: 120 }) },
  message (ws, data) {
    let frame: Frame
    try { frame = JSON.parse(Buffer.from(data).toString()) as Frame } catch { fail(ws, 'bad_request', undefined); return }
    const { room, ref } = frame
    if (typeof room !== 'string') { fail(ws, 'bad_request', ref); return }
    const failed = (error: unknown): void => {
      process.stderr.write(`uws-pg-insert peer: ${String(error)}\n`)
      if (!closed.has(ws)) fail(ws, 'unavailable', ref)
    }
    if (frame.type === 'join') {
      join(ws, room, ref).catch(failed)
    } else if (frame.type === 'message' && typeof frame.body === 'string') {
      if (!ws.isSubscribed(room)) { fail(ws, 'forbidden', ref); return }
      message(ws, room, frame.body, typeof frame.clientMsgId === 'string' ? frame.clientMsgId : null, ref).catch(failed)
    } else {
      fail(ws, 'bad_request', ref)
    }
  },
  close (ws) { closed.add(ws) }
})

const port = await new Promise<number>((resolve, reject) => {
  app.listen('127.0.0.1', 0, (socket) => {
    if (socket === false) reject(new Error('uws-pg-insert peer: listen failed'))
    else resolve(uws.us_socket_local_port(socket))
  })
})
serveUntilSignalled({ port }, async () => {
  app.close()
  await database.close()
})
