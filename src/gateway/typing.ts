import { encodeFrame } from '../protocol/codec.js'
import type { RoomEvent } from '../fanout/room-feed.js'
import type { Socket, Typist } from '../fanout/socket-state.js'

export interface TypingOptions {
  /** Sends a frame to the room's sockets except `except`, including sockets still joining it. */
  readonly broadcast: (roomId: string, event: RoomEvent, except: Socket | null) => void
  /** How long a start lasts without a refresh; API.md fixes 5 s. */
  readonly timeoutMs: number
  /** A refresh is relayed again only this long after the last relay, so late joiners learn of it too. */
  readonly relayEveryMs: number
  readonly now?: () => number
}

/**
 * Typing indicators, per socket and room: relayed to the others in the room (never to the typing
 * socket), never stored. Refreshes are throttled: a start already shown is relayed again at most
 * every `relayEveryMs`. A stop is relayed only if a start was. Whatever ends the typing (a stop, a
 * message, a leave, a removal, a close, or no refresh for `timeoutMs`), the room hears
 * `typing: false`, so an indicator cannot stay stuck.
 */
export interface Typing {
  /** A `typing` frame from `ws`, which is joined to the room. */
  update (ws: Socket, roomId: string, typing: boolean): void
  /** `ws` stopped typing in the room: it sent a message there, left, or lost access. */
  stop (ws: Socket, roomId: string): void
  /** `ws` closed: it stops typing everywhere. */
  closed (ws: Socket): void
}

export function createTyping (options: TypingOptions): Typing {
  const now = options.now ?? Date.now

  const relay = (ws: Socket, roomId: string, typing: boolean): void => {
    const { user } = ws.getUserData()
    const text = encodeFrame({ type: 'typing', room: roomId, userId: user.id, username: user.username, typing })
    options.broadcast(roomId, { text, userId: user.id }, ws)
  }

  const stop = (ws: Socket, roomId: string): void => {
    const typists = ws.getUserData().typing
    const typist = typists?.get(roomId)
    if (typists === undefined || typist === undefined) return
    clearTimeout(typist.expiry)
    typists.delete(roomId)
    relay(ws, roomId, false)
  }

  const start = (ws: Socket, roomId: string): void => {
    const state = ws.getUserData()
    const typists = state.typing ??= new Map<string, Typist>()
    const typist = typists.get(roomId)
    if (typist !== undefined) {
      typist.expiry.refresh()
      if (now() - typist.relayedAt < options.relayEveryMs) return
      typist.relayedAt = now()
      relay(ws, roomId, true)
      return
    }
    const expiry = setTimeout(() => { stop(ws, roomId) }, options.timeoutMs).unref()
    typists.set(roomId, { expiry, relayedAt: now() })
    relay(ws, roomId, true)
  }

  return {
    update (ws, roomId, typing) {
      if (typing) start(ws, roomId)
      else stop(ws, roomId)
    },
    stop,
    closed (ws) {
      const typists = ws.getUserData().typing
      if (typists === undefined) return
      for (const roomId of [...typists.keys()]) stop(ws, roomId)
    }
  }
}
