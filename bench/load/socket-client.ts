// The load generator's socket: one client for every server, so every server is driven the same
// way. It speaks our JSON frames (ours and the raw uWS peer) or Socket.IO's packets (Engine.IO v4
// over a plain WebSocket, as socket.io-client does once upgraded), over the same `ws` library.
// Receiving is the generator's hot path (hundreds of thousands of frames/s), so a delivered
// message is recognised by its prefix and only its body's timestamp is read, not the whole frame.
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import { signToken, type BenchUser, type Protocol } from '../server-process.js'

/** What the scenario learns from a socket; `now` is performance.now() on arrival. */
export interface SocketEvents {
  /**
   * An `ack` for message `n` of this socket, or the `read` reply to its read `n`; `ack` (our frames
   * only) says where the message was stored, or where the read position now is.
   */
  acked (socket: LoadSocket, n: number, now: number, ack?: { readonly room: string, readonly seq: number }): void
  /** A `message` from another socket, whose body started with `<sent at>|<step>|`; `bytes`: the frame's size. */
  delivered (sentAt: number, step: number, now: number, bytes: number): void
  /**
   * Our frames only, instead of `delivered`: each `message` parsed in full, for scenarios that check
   * every receiver's seqs (the cluster's). A JSON.parse per frame: too slow for the fan-out's rates.
   */
  message? (socket: LoadSocket, message: DeliveredMessage, now: number): void
  /** Our frames only: a `receipt`, another user's read position in a room this socket joined. */
  receipt? (socket: LoadSocket, receipt: Receipt, now: number): void
  /** An `error` frame: for message (or read) `n` when it carried its ref, else n = -1. */
  failed (socket: LoadSocket, n: number, code: string): void
  /** The socket closed while the scenario still needed it. */
  closed (socket: LoadSocket, code: number): void
}

export interface DeliveredMessage { readonly room: string, readonly seq: number, readonly body: string }
export interface Receipt { readonly room: string, readonly userId: string, readonly readSeq: number }

/** For sockets that only need to be open (memory, connect storm): nothing to learn from them. */
export const IGNORE_EVENTS: SocketEvents = { acked () {}, delivered () {}, failed () {}, closed () {} }

export interface LoadSocket {
  readonly index: number
  readonly user: BenchUser
  /** Whether it is open and not yet closed by `close`. */
  readonly open: boolean
  join (room: string): Promise<void>
  /** Sends message `n` of this socket (its ref, or Socket.IO ack id). */
  send (room: string, n: number, body: string): void
  /** Our frames only: read `n` of this socket, moving its position in `room` to seq `n` (ref `n`). */
  read (room: string, n: number): void
  close (): void
}

export interface ServerAddress {
  readonly protocol: Protocol
  readonly port: number
  /** What its tokens must carry besides the user and the times. */
  readonly tokenClaims: Readonly<Record<string, unknown>>
}

const CONNECT_TIMEOUT_MS = 15_000
const REPLY_TIMEOUT_MS = 15_000
/** Socket.IO ack ids at and above this answer joins; below, they are message numbers. */
const JOIN_ACKS = 1_000_000_000

/**
 * Sockets opened by this process so far: a socket's clientMsgIds carry its number, so a user who
 * sends in the same room in a later step (the cluster's one-node baseline after its three nodes)
 * is not answered with the original ack of an earlier message, unsent.
 */
let openedSockets = 0

const CHAT_MESSAGE = '{"type":"message"'
const SOCKETIO_MESSAGE = '42["message",'
const BODY = '"body":"'

/** Reads `<sent at>|<step>|` at the start of a message's body without parsing the frame. */
function readStamp (text: string, events: SocketEvents, now: number): void {
  const start = text.indexOf(BODY) + BODY.length
  const first = text.indexOf('|', start)
  const second = text.indexOf('|', first + 1)
  // Every frame is ASCII here (the bench's bodies and names), so its length is its size in bytes.
  events.delivered(Number(text.slice(start, first)), Number(text.slice(first + 1, second)), now, text.length)
}

/** Opens a socket as `user` and waits until the server has accepted it (welcome, or Socket.IO connect). */
export async function openSocket (server: ServerAddress, user: BenchUser, index: number, events: SocketEvents): Promise<LoadSocket> {
  const socketio = server.protocol === 'socketio'
  const token = signToken(user, server.tokenClaims)
  const clientMsgPrefix = `c${index}.${++openedSockets}-`
  const ws = socketio
    ? new WebSocket(`ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket`, { perMessageDeflate: false, skipUTF8Validation: true })
    : new WebSocket(`ws://127.0.0.1:${server.port}/ws`, ['chat.v1', `bearer.${token}`], { perMessageDeflate: false, skipUTF8Validation: true })
  const replies = new Map<string, (ok: boolean, detail: string) => void>()
  let joins = 0
  let open = false
  let closing = false
  let accepted: (error?: Error) => void = () => {}
  const ready = new Promise<void>((resolve, reject) => { accepted = (error) => { if (error === undefined) resolve(); else reject(error) } })

  const socket: LoadSocket = {
    index,
    user,
    get open () { return open },
    async join (room) {
      const ref = socketio ? String(JOIN_ACKS + ++joins) : `j${++joins}`
      const answer = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { replies.delete(ref); reject(new Error(`socket ${index}: no answer to join ${room} within ${REPLY_TIMEOUT_MS / 1000} s`)) }, REPLY_TIMEOUT_MS)
        replies.set(ref, (ok, detail) => {
          clearTimeout(timer)
          if (ok) resolve()
          else reject(new Error(`socket ${index}: join ${room} answered ${detail}`))
        })
      })
      ws.send(socketio ? `42${ref}${JSON.stringify(['join', room])}` : JSON.stringify({ type: 'join', room, ref }))
      await answer
    },
    send (room, n, body) {
      const clientMsgId = `${clientMsgPrefix}${n}`
      ws.send(socketio
        ? `42${n}${JSON.stringify(['message', { room, body, clientMsgId }])}`
        : JSON.stringify({ type: 'message', room, body, clientMsgId, ref: String(n) }))
    },
    read (room, n) {
      if (socketio) throw new Error('Socket.IO peers have no read positions')
      ws.send(JSON.stringify({ type: 'read', room, seq: n, ref: String(n) }))
    },
    close () {
      closing = true
      ws.terminate()
    }
  }

  const onChatFrame = (text: string, now: number): void => {
    if (text.startsWith(CHAT_MESSAGE)) {
      if (events.message === undefined) readStamp(text, events, now)
      else events.message(socket, JSON.parse(text) as DeliveredMessage, now)
      return
    }
    const frame = JSON.parse(text) as { type: string, ref?: string, code?: string, room?: string, seq?: number, readSeq?: number, userId?: string }
    const ref = frame.ref ?? ''
    switch (frame.type) {
      case 'ack': events.acked(socket, Number(ref), now, { room: frame.room ?? '', seq: frame.seq ?? 0 }); break
      case 'read': events.acked(socket, Number(ref), now, { room: frame.room ?? '', seq: frame.readSeq ?? 0 }); break
      case 'receipt': events.receipt?.(socket, { room: frame.room ?? '', userId: frame.userId ?? '', readSeq: frame.readSeq ?? 0 }, now); break
      case 'welcome': accepted(); break
      case 'joined': replies.get(ref)?.(true, text); replies.delete(ref); break
      case 'error': {
        const reply = replies.get(ref)
        if (reply !== undefined) { replies.delete(ref); reply(false, text); break }
        events.failed(socket, ref === '' || Number.isNaN(Number(ref)) ? -1 : Number(ref), frame.code ?? 'no code')
        break
      }
    }
  }

  // Engine.IO packet type, then Socket.IO packet type: 0 open, 2 ping, 40 connected, 44 refused,
  // 42 event, 43<id> ack.
  const onSocketioPacket = (text: string, now: number): void => {
    if (text.startsWith(SOCKETIO_MESSAGE)) { readStamp(text, events, now); return }
    if (text.startsWith('43')) {
      const bracket = text.indexOf('[')
      const id = text.slice(2, bracket)
      const reply = replies.get(id)
      if (reply !== undefined) { replies.delete(id); reply(true, text) } else events.acked(socket, Number(id), now)
    } else if (text === '2') {
      ws.send('3')
    } else if (text.startsWith('0')) {
      ws.send(`40${JSON.stringify({ token })}`)
    } else if (text.startsWith('40')) {
      accepted()
    } else if (text.startsWith('44')) {
      accepted(new Error(`socket ${index}: Socket.IO refused the connection: ${text.slice(2)}`))
    }
  }

  ws.on('message', (data: Buffer) => {
    const now = performance.now()
    const text = data.toString()
    if (socketio) onSocketioPacket(text, now)
    else onChatFrame(text, now)
  })
  ws.on('close', (code) => {
    const wasOpen = open
    open = false
    accepted(new Error(`socket ${index}: closed with ${code} before it was accepted`))
    if (wasOpen && !closing) events.closed(socket, code)
  })
  ws.on('error', (error) => { accepted(new Error(`socket ${index}: ${error.message}`)) })
  ws.on('unexpected-response', (_request, response) => {
    accepted(new Error(`socket ${index}: upgrade refused with HTTP ${response.statusCode ?? '?'}`))
    ws.terminate()
  })
  const timer = setTimeout(() => { accepted(new Error(`socket ${index}: not accepted within ${CONNECT_TIMEOUT_MS / 1000} s`)); ws.terminate() }, CONNECT_TIMEOUT_MS)
  try {
    await ready
  } finally {
    clearTimeout(timer)
  }
  open = true
  return socket
}
