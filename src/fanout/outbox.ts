import type { Log } from '../logger.js'
import { encodeFrame } from '../protocol/codec.js'
import { CloseCode, SocketErrorCode, type ServerFrame } from '../protocol/frames.js'
import type { Socket } from './socket-state.js'

/** uWS's send status for a frame refused because the socket's backpressure is over `maxBackpressure`. */
const DROPPED = 2

/** Sends frames to sockets that may have closed meanwhile, and closes sockets that cannot keep up. */
export interface Outbox {
  /** Sends an encoded frame if the socket is open; false if it is closed or too slow (and now closing). */
  sendText (ws: Socket, text: string): boolean
  send (ws: Socket, frame: ServerFrame): boolean
  error (ws: Socket, code: SocketErrorCode, message: string, ref: string | undefined): void
  /** uWS dropped a frame to `ws` for backpressure (from a send or a publish): count it, close with 1013. */
  dropped (ws: Socket): void
  /** Closes a socket too slow to be served (1013): memory stays bounded and the client resumes with afterSeq. */
  closeSlow (ws: Socket): void
  /** Closes a socket in a room that could not be brought up to date (1013): the client resumes with afterSeq and reads the rest from the database. */
  closeToResume (ws: Socket): void
  /** The socket has closed: nothing more is done to it. */
  forget (ws: Socket): void
  stats (): OutboxStats
}

export interface OutboxStats {
  /** Frames uWS refused for backpressure (the socket was then closed as too slow). */
  readonly dropped: number
  readonly slowClosed: number
  /** Frames sent to one socket (not through a room topic: the room feed counts those). */
  readonly sent: number
  /** `error` frames sent, by code. */
  readonly errors: Readonly<Record<SocketErrorCode, number>>
}

/** Every code an `error` frame may carry, from the frame's schema. */
const ERROR_CODES = SocketErrorCode.anyOf.map((literal) => literal.const)

export function createOutbox (log: Log): Outbox {
  let dropped = 0
  let slowClosed = 0
  let sent = 0
  const errors = Object.fromEntries(ERROR_CODES.map((code) => [code, 0])) as Record<SocketErrorCode, number>
  // uWS reports drops from inside send/publish; closing a socket there would change a topic while
  // uWS iterates it (a segfault), so slow sockets are closed right after, from the event loop.
  const ending = new Map<Socket, string>()
  let closing: NodeJS.Immediate | null = null
  const endSockets = (): void => {
    closing = null
    for (const [ws, reason] of ending) ws.end(CloseCode.slowConsumer, reason)
    ending.clear()
  }
  /** Closes with 1013 from the event loop; false if the socket was already closed or closing. */
  const endLater = (ws: Socket, reason: string): boolean => {
    const state = ws.getUserData()
    if (!state.open) return false
    state.open = false
    ending.set(ws, reason)
    closing ??= setImmediate(endSockets)
    return true
  }
  const closeSlow = (ws: Socket): void => {
    if (!endLater(ws, 'too slow: messages were dropped; rejoin with afterSeq')) return
    slowClosed++
    log.warn({ userId: ws.getUserData().user.id, buffered: ws.getBufferedAmount() }, 'closing a socket that cannot keep up')
  }
  const sendText = (ws: Socket, text: string): boolean => {
    if (!ws.getUserData().open) return false
    let status = 0
    // Corked: after an await uWS does not cork for us, and a send per syscall is dreadful.
    ws.cork(() => { status = ws.send(text) })
    if (status !== DROPPED) {
      sent++
      return true
    }
    closeSlow(ws)
    return false
  }
  return {
    sendText,
    send: (ws, frame) => sendText(ws, encodeFrame(frame)),
    error (ws, code, message, ref) {
      errors[code]++
      sendText(ws, encodeFrame(ref === undefined ? { type: 'error', code, message } : { type: 'error', code, message, ref }))
    },
    dropped (ws) {
      dropped++
      closeSlow(ws)
    },
    closeSlow,
    closeToResume (ws) {
      endLater(ws, 'messages could not be delivered in order; rejoin with afterSeq')
    },
    forget (ws) {
      ending.delete(ws)
    },
    stats: () => ({ dropped, slowClosed, sent, errors: { ...errors } })
  }
}
