// Peer: raw uWebSockets.js pub/sub, the limit we aim at. It speaks the subset of our socket
// protocol the load generator uses (welcome, join → joined, message → ack + `message` to the
// room's other sockets) with none of the work a chat server must do: no token check, no
// validation beyond JSON.parse, no storage, no presence. Seqs and ids are counted in memory.
// `node dist/bench/peers/uws-raw.js`; prints {"port": N} when ready.
import * as uws from 'uWebSockets.js'
import { serveUntilSignalled } from '../server-lifecycle.js'

interface Frame { type?: string, room?: string, body?: string, clientMsgId?: string, ref?: string }
interface User { readonly id: string, readonly username: string }

const seqs = new Map<string, number>()
/**
 * Our ids come from a bigserial that the bench's earlier scenarios (and the reads scenario's seeded
 * rooms) have already moved; starting at 100,000 gives raw ids as many digits as ours typically have.
 */
let ids = 100_000
// The load generator reads only the frame's type.
const WELCOME = JSON.stringify({ type: 'welcome', user: { id: '1', username: 'raw' }, heartbeat: 120 })

/**
 * The user a socket's token names, read without checking it (no auth here): it is only for the
 * `message` frame's userId and username, so raw uWS publishes frames as large as ours.
 */
function tokenUser (protocols: string): User {
  const token = protocols.split(',').map((protocol) => protocol.trim()).find((protocol) => protocol.startsWith('bearer.')) ?? ''
  // bearer.<header>.<payload>.<signature>
  const payload = token.split('.')[2]
  try {
    const { sub, username } = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()) as Partial<User> & { sub?: string }
    return { id: sub ?? '1', username: username ?? 'raw' }
  } catch {
    return { id: '1', username: 'raw' }
  }
}

const app = uws.App().ws<User>('/ws', {
  compression: 0,
  maxPayloadLength: 64 * 1024,
  idleTimeout: 120,
  upgrade (res, req, context) {
    // Answer with the client's first subprotocol (`chat.v1`), as our server does, so one client fits both.
    const protocols = req.getHeader('sec-websocket-protocol')
    res.upgrade<User>(tokenUser(protocols), req.getHeader('sec-websocket-key'), protocols.split(',')[0]!.trim(), req.getHeader('sec-websocket-extensions'), context)
  },
  open (ws) { ws.send(WELCOME) },
  message (ws, data) {
    let frame: Frame
    try { frame = JSON.parse(Buffer.from(data).toString()) as Frame } catch { return }
    const room = String(frame.room)
    if (frame.type === 'join') {
      ws.subscribe(room)
      ws.send(JSON.stringify({ type: 'joined', room, lastSeq: seqs.get(room) ?? 0, online: [], ref: frame.ref }))
    } else if (frame.type === 'message') {
      const seq = (seqs.get(room) ?? 0) + 1
      seqs.set(room, seq)
      const id = String(++ids)
      const createdAt = new Date().toISOString()
      const clientMsgId = frame.clientMsgId ?? null
      const { id: userId, username } = ws.getUserData()
      // The same frame our server sends, so every server moves the same bytes.
      ws.publish(room, JSON.stringify({ type: 'message', id, room, seq, userId, username, body: frame.body, clientMsgId, createdAt }))
      ws.send(JSON.stringify({ type: 'ack', room, id, seq, clientMsgId, createdAt, ref: frame.ref }))
    } else if (frame.type === 'leave') {
      ws.unsubscribe(room)
      ws.send(JSON.stringify({ type: 'left', room, ref: frame.ref }))
    }
  }
})

const port = await new Promise<number>((resolve, reject) => {
  app.listen('127.0.0.1', 0, (socket) => {
    if (socket === false) reject(new Error('raw uWS peer: listen failed'))
    else resolve(uws.us_socket_local_port(socket))
  })
})
serveUntilSignalled({ port }, async () => { app.close() })
