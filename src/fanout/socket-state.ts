import type { WebSocket } from 'uWebSockets.js'
import type { User } from '../protocol/resources.js'

/** A join in progress: replay and buffered live messages are still being sent. */
export interface Joining {
  readonly done: Promise<void>
  /** The user lost access to the room meanwhile: the join must not complete. */
  revoked: boolean
}

/** A socket's token bucket; kept on the socket's own state so it costs three numbers per socket. */
export interface RateState {
  tokens: number
  refilledAt: number
  /** Frames refused in a row; reset by the first frame that fits. */
  strikes: number
}

/** One socket typing in one room. */
export interface Typist {
  /** Fires when the start has not been refreshed for the timeout: the server sends `typing: false`. */
  readonly expiry: NodeJS.Timeout
  /** When `typing: true` was last relayed to the room (ms). */
  relayedAt: number
}

/** Per-socket state, held by uWS as the socket's user data. Kept small: it exists once per connection. */
export interface SocketState extends RateState {
  readonly user: User
  /** When the token expires (ms since the epoch); the socket is closed with 1008 then. An `auth` frame moves it later. */
  expiresAt: number
  /** Rooms this socket has joined or is joining. */
  readonly rooms: Map<string, 'joined' | Joining>
  /** False from the close handler on: a closed uWS socket throws on any call. */
  open: boolean
  /** Set while a replay waits for the socket's send buffer to drain. */
  onDrain: (() => void) | undefined
  /** Rooms this socket is typing in; created on its first `typing`, so idle sockets carry no map. */
  typing: Map<string, Typist> | undefined
}

export type Socket = WebSocket<SocketState>
