import type { Log } from '../logger.js'
import { encodeFrame } from '../protocol/codec.js'
import { CloseCode, type ServerFrame, type SocketErrorCode } from '../protocol/frames.js'
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
  /** The socket has closed: nothing more is done to it. */
  forget (ws: Socket): void
  stats (): { readonly dropped: number, readonly slowClosed: number }
}

export function createOutbox (log: Log): Outbox {
  let dropped = 0
  let slowClosed = 0
  // uWS reports drops from inside send/publish; closing a socket there would change a topic while
  // uWS iterates it (a segfault), so slow sockets are closed right after, from the event loop.
  const slow = new Set<Socket>()
  let closing: NodeJS.Immediate | null = null
  const closeSlowSockets = (): void => {
    closing = null
    for (const ws of slow) ws.end(CloseCode.slowConsumer, 'too slow: messages were dropped; rejoin with afterSeq')
    slow.clear()
  }
  const closeSlow = (ws: Socket): void => {
    const state = ws.getUserData()
    if (!state.open) return
    state.open = false
    slowClosed++
    log.warn({ userId: state.user.id, buffered: ws.getBufferedAmount() }, 'closing a socket that cannot keep up')
    slow.add(ws)
    closing ??= setImmediate(closeSlowSockets)
  }
  const sendText = (ws: Socket, text: string): boolean => {
    if (!ws.getUserData().open) return false
    let status = 0
    // Corked: after an await uWS does not cork for us, and a send per syscall is dreadful.
    ws.cork(() => { status = ws.send(text) })
    if (status !== DROPPED) return true
    closeSlow(ws)
    return false
  }
  return {
    sendText,
    send: (ws, frame) => sendText(ws, encodeFrame(frame)),
    error (ws, code, message, ref) {
      sendText(ws, encodeFrame(ref === undefined ? { type: 'error', code, message } : { type: 'error', code, message, ref }))
    },
    dropped (ws) {
      dropped++
      closeSlow(ws)
    },
    closeSlow,
    forget (ws) {
      slow.delete(ws)
    },
    stats: () => ({ dropped, slowClosed })
  }
}
