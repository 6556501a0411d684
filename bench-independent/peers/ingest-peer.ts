// The hand-written ingest peer: uWebSockets.js, a `pg` pool of 10 and one INSERT per message, acked
// once the INSERT has committed. It speaks the subset of the chat socket protocol the load uses
// (token on the upgrade, welcome, join/joined, message/ack, ping/pong), so one load generator
// drives it and the real server alike. Per-room seq comes from an in-memory counter seeded from
// the table at the first join: this process is the only writer.
import { App, type HttpResponse, type HttpRequest, type us_socket_context_t, type WebSocket } from 'uWebSockets.js'
import pg from 'pg'
import { bearerToken, verifyToken } from '../jwt.js'
import { parseObject, requiredEnv, stringField, type Fields } from './frames.js'

interface Session {
  userId: string
  username: string
  expiresAt: string
  rooms: Set<string>
  closed: boolean
}

const port = Number(requiredEnv('PORT'))
const secret = requiredEnv('JWT_SECRET')
const pool = new pg.Pool({ connectionString: requiredEnv('DATABASE_URL'), max: 10 })
const lastSeq = new Map<string, number>()

// A socket closed while its query ran must not be touched (uWS throws), hence the session's flag,
// read from the session itself rather than through the socket.
function sendFrame(ws: WebSocket<Session>, session: Session, frame: Fields): void {
  if (session.closed) return
  ws.cork(() => ws.send(JSON.stringify(frame)))
}

function sendError(ws: WebSocket<Session>, session: Session, code: string, message: string, ref: string | undefined): void {
  sendFrame(ws, session, { type: 'error', code, message, ...(ref === undefined ? {} : { ref }) })
}

function tokenOf(req: HttpRequest): string {
  const fromHeader = bearerToken(req.getHeader('authorization'))
  if (fromHeader !== '') return fromHeader
  const fromProtocol = req.getHeader('sec-websocket-protocol').split(',').map((p) => p.trim()).find((p) => p.startsWith('bearer.'))
  if (fromProtocol !== undefined) return fromProtocol.slice('bearer.'.length)
  return new URLSearchParams(req.getQuery()).get('token') ?? ''
}

function upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
  const claims = verifyToken(tokenOf(req), secret)
  if (claims === null) {
    res.writeStatus('401 Unauthorized').end()
    return
  }
  const protocol = req.getHeader('sec-websocket-protocol').includes('chat.v1') ? 'chat.v1' : ''
  const session: Session = {
    userId: claims.sub,
    username: claims.username,
    expiresAt: new Date(claims.exp * 1000).toISOString(),
    rooms: new Set(),
    closed: false
  }
  res.upgrade(session, req.getHeader('sec-websocket-key'), protocol, req.getHeader('sec-websocket-extensions'), context)
}

async function join(ws: WebSocket<Session>, session: Session, room: string, ref: string | undefined): Promise<void> {
  const found = await pool.query<{ last: string }>(
    'SELECT coalesce((SELECT max(seq) FROM messages WHERE room = $1), 0) AS last FROM rooms WHERE id = $1',
    [room]
  )
  const row = found.rows[0]
  if (row === undefined) return sendError(ws, session, 'not_found', 'no such room', ref)
  if (!lastSeq.has(room)) lastSeq.set(room, Number(row.last))
  session.rooms.add(room)
  sendFrame(ws, session, { type: 'joined', room, lastSeq: lastSeq.get(room), online: [], readSeq: 0, ...(ref === undefined ? {} : { ref }) })
}

async function store(ws: WebSocket<Session>, session: Session, frame: Fields, room: string, ref: string | undefined): Promise<void> {
  const body = stringField(frame, 'body')
  const clientMsgId = stringField(frame, 'clientMsgId') ?? null
  if (!session.rooms.has(room)) return sendError(ws, session, 'forbidden', 'join the room first', ref)
  if (body === undefined || body.length < 1 || body.length > 4000) return sendError(ws, session, 'bad_request', 'body must be 1-4000 chars', ref)
  const seq = (lastSeq.get(room) ?? 0) + 1
  lastSeq.set(room, seq)
  const inserted = await pool.query<{ id: string; created_at: Date }>(
    'INSERT INTO messages (room, seq, user_id, body, client_msg_id) VALUES ($1, $2, $3, $4, $5) RETURNING id, created_at',
    [room, seq, session.userId, body, clientMsgId]
  )
  const row = inserted.rows[0]!
  sendFrame(ws, session, {
    type: 'ack',
    room,
    id: row.id,
    seq,
    clientMsgId,
    createdAt: row.created_at.toISOString(),
    ...(ref === undefined ? {} : { ref })
  })
}

function onMessage(ws: WebSocket<Session>, data: ArrayBuffer): void {
  const session = ws.getUserData()
  const frame = parseObject(Buffer.from(data).toString('utf8'))
  if (frame === null) return sendError(ws, session, 'bad_request', 'not a JSON object', undefined)
  const ref = stringField(frame, 'ref')
  const room = stringField(frame, 'room') ?? ''
  const failed = (error: unknown): void => {
    console.error(error)
    sendError(ws, session, 'internal', 'store failed', ref)
  }
  switch (frame.type) {
    case 'join':
      join(ws, session, room, ref).catch(failed)
      return
    case 'message':
      store(ws, session, frame, room, ref).catch(failed)
      return
    case 'ping':
      sendFrame(ws, session, { type: 'pong', ...(ref === undefined ? {} : { ref }) })
      return
    default:
      sendError(ws, session, 'bad_request', 'unknown type', ref)
  }
}

App()
  .ws<Session>('/ws', {
    maxPayloadLength: 64 * 1024,
    idleTimeout: 120,
    maxBackpressure: 1024 * 1024,
    upgrade,
    open: (ws) => {
      const session = ws.getUserData()
      const { userId, username, expiresAt } = session
      sendFrame(ws, session, { type: 'welcome', user: { id: userId, username }, heartbeat: 120, expiresAt })
    },
    message: onMessage,
    close: (ws) => {
      ws.getUserData().closed = true
    }
  })
  .get('/health', (res) => {
    res.writeHeader('content-type', 'application/json').end('{"status":"ok"}')
  })
  .listen('127.0.0.1', port, (listening) => {
    if (listening === false) {
      console.error(`ingest peer: cannot listen on 127.0.0.1:${port}`)
      process.exit(1)
    }
    console.log(`ingest peer listening on 127.0.0.1:${port}`)
  })

process.once('SIGTERM', () => process.exit(0))
