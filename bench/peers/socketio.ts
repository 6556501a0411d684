// Peer: Socket.IO 4, the common choice, written the way its docs suggest: a JWT checked in an
// `io.use` middleware, rooms with `socket.join`, `socket.to(room).emit` for fan-out, acks by
// callback. It stores nothing (peers/uws-pg-insert.ts is the storing peer).
// `node dist/bench/peers/socketio.js`; prints {"port": N} when ready.
import { createServer } from 'node:http'
import { Server, type DefaultEventsMap } from 'socket.io'
import { serveUntilSignalled } from '../server-lifecycle.js'
import { verifyToken, type PeerClaims } from './jwt.js'

interface Incoming { room?: unknown, body?: unknown, clientMsgId?: unknown }
type Reply = (answer: object) => void

const seqs = new Map<string, number>()
let ids = 0

const http = createServer()
// Typed socket.data: the middleware stores the verified claims there.
const io = new Server<DefaultEventsMap, DefaultEventsMap, DefaultEventsMap, { user: PeerClaims }>(http, { transports: ['websocket'], serveClient: false, maxHttpBufferSize: 64 * 1024 })

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
    const id = String(++ids)
    const createdAt = new Date().toISOString()
    socket.to(room).emit('message', { id, room, seq, userId: user.sub, username: user.username, body: frame.body, clientMsgId, createdAt })
    reply({ room, id, seq, clientMsgId, createdAt })
  })
})

const port = await new Promise<number>((resolve) => {
  http.listen(0, '127.0.0.1', () => { resolve((http.address() as { port: number }).port) })
})
serveUntilSignalled({ port }, async () => {
  await io.close()
})
