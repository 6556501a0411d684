/** The public types of the client: the protocol's shapes as the client delivers them. */

/** A stored message (API.md `Message`). */
export interface Message {
  id: string
  room: string
  seq: number
  userId: string
  username: string
  body: string
  clientMsgId: string | null
  createdAt: string
}

/** The answer to `room.send()`: the message is durably stored. */
export interface Ack {
  room: string
  id: string
  seq: number
  clientMsgId: string | null
  createdAt: string
}

export interface User {
  id: string
  username: string
}

export interface OnlineUser {
  userId: string
  username: string
}

export interface TypingEvent {
  room: string
  userId: string
  username: string
  typing: boolean
}

export interface PresenceEvent {
  room: string
  userId: string
  username: string
  status: 'online' | 'offline'
}

export interface ReceiptEvent {
  room: string
  userId: string
  username: string
  readSeq: number
}

/** The answer to `room.read()`: the caller's read position as stored. */
export interface ReadResult {
  room: string
  readSeq: number
}

/** `left` without `room.leave()`: the server ended the membership (`reason: 'removed'`). */
export interface LeftEvent {
  room: string
  reason: string
}

export type ConnectionState = 'connecting' | 'open' | 'closed'

/** Every rejection and `error` event: an `Error` whose `code` is the protocol's error code, or `closed`. */
export interface ChatError extends Error {
  code: string
}

export interface ClientEvents {
  state: ConnectionState
  /** `unauthorized` (the token was refused; fatal for a string token), or a token function's failure. */
  error: ChatError
  /** The server's `welcome` on each (re)connect. */
  welcome: { user: User, heartbeat: number, expiresAt: string }
}

export interface RoomEvents {
  message: Message
  typing: TypingEvent
  presence: PresenceEvent
  receipt: ReceiptEvent
  left: LeftEvent
}

/** What the client needs of a WebSocket instance: the browser's and `ws`'s both fit. */
export interface WebSocketLike {
  readonly readyState: number
  send: (data: string) => void
  close: (code?: number, reason?: string) => void
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: { code: number, reason?: string }) => void) | null
  onerror: ((event: unknown) => void) | null
}

/** A WebSocket class: the browser's, Node 22's global one, or `WebSocket` from the `ws` package. */
export type WebSocketConstructor = new (url: string, protocols: string[]) => unknown

/** What the client needs of `fetch` (for `GET /auth/me`). */
export type FetchLike = (url: string, init: { headers: Record<string, string> }) => Promise<{ status: number }>

/** Time and randomness, injectable for tests. Defaults to the real ones. */
export interface Clock {
  now: () => number
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
  random: () => number
}

export type TokenSource = string | (() => string | Promise<string>)

export interface ChatClientOptions {
  /** The socket URL, e.g. `ws://localhost:3000/ws`. */
  url: string
  /** A token, or a function returning one (or a promise of one), called on reconnects that need a fresh token and before expiry. */
  token: TokenSource
  /** Defaults to `globalThis.WebSocket`; pass `WebSocket` from `ws` on Node 20. */
  WebSocket?: WebSocketConstructor
  /** Defaults to `globalThis.fetch`; used for `GET /auth/me` after a failed upgrade. */
  fetch?: FetchLike
  /** Defaults to `Date.now`, the global timers and `Math.random`. */
  clock?: Clock
  /** Reconnect backoff bounds in ms (defaults 500 and 20000). */
  backoffMin?: number
  backoffMax?: number
  /** How long a connection must stay open before the backoff starts over, ms (default 10000). */
  stableAfter?: number
  /** A connection attempt that has not received `welcome` after this many ms is dropped (default 15000). */
  connectTimeout?: number
  /** How long a gap in a room's seqs may stay open before the room is re-joined to fill it, ms (default 2000). */
  gapTimeout?: number
}
