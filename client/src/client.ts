import { backoffDelay } from './backoff.js'
import { Emitter } from './emitter.js'
import { chatError } from './errors.js'
import { Room, type Frame, type Reply, type RoomHost } from './room.js'
import type {
  ChatClientOptions, ChatError, ClientEvents, Clock, ConnectionState, FetchLike, Message, TokenSource, User,
  WebSocketConstructor, WebSocketLike
} from './types.js'

/** The globals the client may use, all optional: browsers, Node 20 (no WebSocket) and Node 22 differ. */
interface Globals {
  WebSocket?: WebSocketConstructor
  fetch?: FetchLike
  crypto?: { randomUUID?: () => string, getRandomValues?: (array: Uint8Array) => Uint8Array }
  addEventListener?: (type: string, listener: () => void) => void
  removeEventListener?: (type: string, listener: () => void) => void
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
}

const g = globalThis as unknown as Globals

const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => g.setTimeout(fn, ms),
  clearTimeout: (handle) => { g.clearTimeout(handle) },
  random: () => Math.random()
}

/** A socket that has received nothing for heartbeat + this long is dead (browsers cannot see WebSocket pings). */
const DEAD_AFTER_EXTRA_MS = 10_000
/** Refresh the token at this share of its remaining lifetime. */
const REFRESH_AT = 0.8
/** Never schedule a token refresh sooner than this (a skewed clock would otherwise spin). */
const MIN_REFRESH_MS = 5000
/** Our own close code for a connection we gave up on (dead, or no `welcome` in time). */
const CLOSE_GIVEN_UP = 4000

/**
 * The chat client: one WebSocket, reconnected with full-jitter backoff, rooms re-joined with
 * their cursors, unacked sends kept in an outbox and sent again, the token refreshed before it
 * expires. Everything a connection starts (timers, handlers, replies) belongs to its
 * generation: once that connection is gone, a late answer or timer of it changes nothing.
 */
export class ChatClient extends Emitter<ClientEvents> {
  private readonly url: string
  private readonly tokenSource: TokenSource
  private readonly WebSocketClass: WebSocketConstructor | undefined
  private readonly fetchFn: FetchLike | undefined
  private readonly clock: Clock
  private readonly backoffMin: number
  private readonly backoffMax: number
  private readonly stableAfter: number
  private readonly connectTimeout: number
  private readonly gapTimeout: number

  private stateValue: ConnectionState = 'connecting'
  /** Bumped whenever a connection or attempt ends: everything tagged with an older value is void. */
  private generation = 0
  private attempt = 0
  private ws: WebSocketLike | null = null
  private welcomed = false
  private offline = false
  private timers = new Set<unknown>()
  private replies = new Map<string, Reply>()
  private refCounter = 0
  private rooms = new Map<string, Room>()
  private userValue: User | undefined

  private token: string | undefined
  private tokenRefreshAt: number | undefined
  private tokenStale = false
  private tokenFlight: Promise<string> | null = null
  private refreshAttempt = 0

  private heartbeatMs = 0
  private lastSent = 0
  private lastReceived = 0
  private cancelHeartbeat: (() => void) | null = null

  private readonly onOnline = (): void => {
    this.offline = false
    if (this.stateValue !== 'closed' && this.ws === null) this.reconnectNow()
  }

  private readonly onOffline = (): void => {
    if (this.stateValue === 'closed') return
    this.offline = true
    if (this.ws !== null) this.disconnect(CLOSE_GIVEN_UP, this.welcomed)
    else this.endGeneration()
  }

  private readonly host: RoomHost

  constructor (options: ChatClientOptions) {
    super()
    this.url = options.url
    this.tokenSource = options.token
    this.WebSocketClass = options.WebSocket ?? g.WebSocket
    this.fetchFn = options.fetch ?? (typeof g.fetch === 'function' ? g.fetch.bind(globalThis) : undefined)
    this.clock = options.clock ?? realClock
    this.backoffMin = options.backoffMin ?? 500
    this.backoffMax = options.backoffMax ?? 20_000
    this.stableAfter = options.stableAfter ?? 10_000
    this.connectTimeout = options.connectTimeout ?? 15_000
    this.gapTimeout = options.gapTimeout ?? 2000
    if (typeof this.tokenSource === 'string') this.token = this.tokenSource
    const closed = (): boolean => this.stateValue === 'closed'
    this.host = {
      get closed () { return closed() },
      isOpen: () => this.welcomed,
      user: () => this.userValue,
      request: (frame, reply) => { this.request(frame, reply) },
      sendFrame: (frame) => { this.sendFrame(frame) },
      after: (ms, fn) => this.after(ms, fn),
      backoff: (attempt) => backoffDelay(attempt, this.backoffMin, this.backoffMax, this.clock.random),
      now: () => this.clock.now(),
      newId: () => newId(this.clock.random),
      gapTimeout: this.gapTimeout
    }
    if (typeof g.addEventListener === 'function') {
      g.addEventListener('online', this.onOnline)
      g.addEventListener('offline', this.onOffline)
    }
    // Connecting starts after this tick, so listeners added right after `new` see 'connecting'.
    const generation = this.generation
    void Promise.resolve().then(() => {
      if (generation !== this.generation) return
      this.emit('state', 'connecting')
      void this.connect()
    })
  }

  /** 'connecting' (also while reconnecting) | 'open' | 'closed' (after `close()` or a refused string token). */
  get state (): ConnectionState {
    return this.stateValue
  }

  /** The user the server welcomed (undefined before the first `welcome`). */
  get user (): User | undefined {
    return this.userValue
  }

  /** The room with this id: the same object for the same id. */
  room (id: string): Room {
    let room = this.rooms.get(id)
    if (room === undefined) {
      room = new Room(id, this.host)
      if (this.stateValue !== 'closed') this.rooms.set(id, room)
    }
    return room
  }

  /** Closes the socket and removes every timer and listener; pending promises reject with `closed`. */
  close (): void {
    this.shutdown(chatError('closed', 'the client is closed'))
  }

  private shutdown (err: ChatError): void {
    if (this.stateValue === 'closed') return
    this.endGeneration()
    this.dropSocket(1000)
    if (typeof g.removeEventListener === 'function') {
      g.removeEventListener('online', this.onOnline)
      g.removeEventListener('offline', this.onOffline)
    }
    this.setState('closed')
    const rooms = [...this.rooms.values()]
    this.rooms.clear()
    for (const room of rooms) room.shutdown(err)
    this.tokenFlight = null
    this.removeAllListeners()
  }

  private setState (state: ConnectionState): void {
    if (state === this.stateValue) return
    this.stateValue = state
    this.emit('state', state)
  }

  /** Voids everything of the current generation: its timers are cleared, its late callbacks return early. */
  private endGeneration (): void {
    this.generation++
    for (const handle of this.timers) this.clock.clearTimeout(handle)
    this.timers.clear()
    this.replies.clear()
    this.cancelHeartbeat = null
  }

  /** A timer of the current generation. Returns its cancel function. */
  private after (ms: number, fn: () => void): () => void {
    const generation = this.generation
    const handle = this.clock.setTimeout(() => {
      this.timers.delete(handle)
      if (generation === this.generation) fn()
    }, ms)
    this.timers.add(handle)
    return () => {
      if (this.timers.delete(handle)) this.clock.clearTimeout(handle)
    }
  }

  private async connect (): Promise<void> {
    this.endGeneration()
    const generation = this.generation
    this.setState('connecting')
    let token: string
    try {
      token = await this.getToken()
    } catch (err) {
      if (generation !== this.generation) return
      this.emit('error', toChatError(err, 'token'))
      this.scheduleReconnect()
      return
    }
    if (generation !== this.generation) return
    const WebSocketClass = this.WebSocketClass
    if (WebSocketClass === undefined) {
      this.shutdown(chatError('unavailable', 'no WebSocket: pass one in the options'))
      return
    }
    let ws: WebSocketLike
    try {
      ws = new WebSocketClass(this.url, ['chat.v1', 'bearer.' + token]) as WebSocketLike
    } catch (err) {
      this.emit('error', toChatError(err, 'bad_request'))
      this.scheduleReconnect()
      return
    }
    this.ws = ws
    this.welcomed = false
    let opened = false
    ws.onopen = () => { if (generation === this.generation) opened = true }
    ws.onmessage = (event) => {
      if (generation !== this.generation) return
      this.lastReceived = this.clock.now()
      this.onFrame(event.data)
    }
    ws.onclose = (event) => {
      if (generation === this.generation) this.disconnect(event.code, opened, token)
    }
    // An error is always followed by a close.
    ws.onerror = () => {}
    this.after(this.connectTimeout, () => {
      if (!this.welcomed) this.disconnect(CLOSE_GIVEN_UP, opened, token)
    })
  }

  /** The connection is gone (or given up): void its generation, then reconnect as the close code asks. */
  private disconnect (code: number, opened: boolean, token?: string): void {
    const wasWelcomed = this.welcomed
    this.endGeneration()
    this.dropSocket(CLOSE_GIVEN_UP)
    for (const room of this.rooms.values()) room.onDisconnect()
    this.setState('connecting')
    if (this.offline) return
    // API.md: a token function is called again on every reconnect, so a connection that was up
    // reconnects with a fresh token; so does a 1008 (policy, usually the token expired). Attempts
    // that fail before opening reuse it (unless /auth/me refuses it): the provider is not hammered.
    if (code === 1008 || wasWelcomed) this.tokenStale = true
    if (!opened && !wasWelcomed && token !== undefined) void this.checkToken(token)
    else this.scheduleReconnect()
  }

  private dropSocket (code: number): void {
    const ws = this.ws
    this.ws = null
    this.welcomed = false
    if (ws === null) return
    ws.onopen = null
    ws.onmessage = null
    ws.onclose = null
    ws.onerror = () => {}
    try {
      ws.close(code)
    } catch {
      // Already closed or closing.
    }
  }

  /**
   * A browser shows a refused upgrade as a bare 1006 before `open`: `GET /auth/me` tells a bad
   * token (401) from a network failure, so a bad token is replaced instead of retried forever.
   */
  private async checkToken (token: string): Promise<void> {
    const generation = this.generation
    const fetchFn = this.fetchFn
    const meUrl = authMeUrl(this.url)
    let status = 0
    if (fetchFn !== undefined && meUrl !== undefined) {
      try {
        status = (await fetchFn(meUrl, { headers: { Authorization: 'Bearer ' + token } })).status
      } catch {
        // Network failure: just back off.
      }
    }
    if (generation !== this.generation) return
    if (status === 401) {
      if (typeof this.tokenSource === 'string') {
        const err = chatError('unauthorized', 'the token was refused')
        this.emit('error', err)
        this.shutdown(err)
        return
      }
      this.tokenStale = true
    }
    this.scheduleReconnect()
  }

  private scheduleReconnect (): void {
    if (this.offline) return
    const delay = backoffDelay(this.attempt++, this.backoffMin, this.backoffMax, this.clock.random)
    this.after(delay, () => { void this.connect() })
  }

  private reconnectNow (): void {
    this.attempt = 0
    void this.connect()
  }

  /**
   * The current token, or a fresh one when there is none, it is near expiry, the server refused
   * it, or `force`. One fetch at a time: concurrent callers share it.
   */
  private getToken (force = false): Promise<string> {
    const source = this.tokenSource
    if (typeof source === 'string') return Promise.resolve(source)
    if (this.tokenFlight !== null) return this.tokenFlight
    const stale = this.tokenStale || (this.tokenRefreshAt !== undefined && this.clock.now() >= this.tokenRefreshAt)
    if (!force && !stale && this.token !== undefined) return Promise.resolve(this.token)
    const flight = Promise.resolve().then(source).then((token) => {
      if (typeof token !== 'string' || token === '') throw chatError('unauthorized', 'the token function gave no token')
      if (this.tokenFlight === flight) {
        this.token = token
        this.tokenStale = false
        this.tokenRefreshAt = undefined
      }
      return token
    })
    this.tokenFlight = flight
    const clear = (): void => { if (this.tokenFlight === flight) this.tokenFlight = null }
    flight.then(clear, clear)
    return flight
  }

  /** The socket's expiry moved (`welcome`, `authed`): refresh at 80 % of what is left, with `auth` on this socket. */
  private onExpiry (expiresAt: unknown): void {
    if (typeof this.tokenSource === 'string' || typeof expiresAt !== 'string') return
    const at = Date.parse(expiresAt)
    if (Number.isNaN(at)) return
    const now = this.clock.now()
    const delay = Math.max(MIN_REFRESH_MS, (at - now) * REFRESH_AT)
    this.tokenRefreshAt = now + delay
    this.after(delay, () => { void this.refreshToken() })
  }

  private async refreshToken (): Promise<void> {
    const generation = this.generation
    let token: string
    try {
      token = await this.getToken(true)
    } catch (err) {
      if (generation !== this.generation) return
      this.emit('error', toChatError(err, 'token'))
      this.retryRefresh()
      return
    }
    if (generation !== this.generation) return
    this.request({ type: 'auth', token }, {
      reply: (frame) => {
        this.refreshAttempt = 0
        this.onExpiry(frame.expiresAt)
      },
      error: (err) => {
        this.emit('error', err)
        this.retryRefresh()
      }
    })
  }

  private retryRefresh (): void {
    this.after(backoffDelay(this.refreshAttempt++, this.backoffMin, this.backoffMax, this.clock.random), () => { void this.refreshToken() })
  }

  private request (frame: Record<string, unknown>, reply: Reply): void {
    const ref = String(++this.refCounter)
    this.replies.set(ref, reply)
    this.sendFrame({ ...frame, ref })
  }

  private sendFrame (frame: Record<string, unknown>): void {
    const ws = this.ws
    if (ws === null || !this.welcomed) return
    try {
      ws.send(JSON.stringify(frame))
      this.lastSent = this.clock.now()
    } catch {
      // The socket is closing; its close event reconnects and everything unanswered is sent again.
    }
  }

  private onFrame (data: unknown): void {
    let frame: Frame
    try {
      const parsed: unknown = JSON.parse(typeof data === 'string' ? data : String(data))
      if (typeof parsed !== 'object' || parsed === null || typeof (parsed as Frame).type !== 'string') return
      frame = parsed as Frame
    } catch {
      return
    }
    if (frame.type === 'welcome') {
      this.onWelcome(frame)
      return
    }
    const ref = typeof frame.ref === 'string' ? frame.ref : undefined
    const reply = ref === undefined ? undefined : this.replies.get(ref)
    if (reply !== undefined && ref !== undefined) {
      this.replies.delete(ref)
      if (frame.type === 'error') reply.error(chatError(String(frame.code), String(frame.message)))
      else reply.reply(frame)
      return
    }
    const room = typeof frame.room === 'string' ? this.rooms.get(frame.room) : undefined
    switch (frame.type) {
      case 'message':
        room?.onMessage(frame as unknown as Message)
        break
      case 'presence':
        room?.onPresence(frame)
        break
      case 'typing':
        room?.onTyping(frame)
        break
      case 'receipt':
        room?.onReceipt(frame)
        break
      case 'ack':
        room?.onStrayAck(frame)
        break
      case 'left':
        if (ref === undefined) room?.onRemoved(frame)
        break
      case 'error':
        this.emit('error', chatError(String(frame.code), String(frame.message)))
        break
    }
  }

  private onWelcome (frame: Frame): void {
    if (this.welcomed) return
    const user = frame.user as User | undefined
    if (user !== undefined) this.userValue = { id: String(user.id), username: String(user.username) }
    this.welcomed = true
    const heartbeat = typeof frame.heartbeat === 'number' && frame.heartbeat > 0 ? frame.heartbeat : 30
    this.heartbeatMs = heartbeat * 1000
    this.lastSent = this.clock.now()
    this.scheduleHeartbeat()
    this.onExpiry(frame.expiresAt)
    this.after(this.stableAfter, () => { this.attempt = 0 })
    this.setState('open')
    this.emit('welcome', { user: this.userValue ?? { id: '', username: '' }, heartbeat, expiresAt: String(frame.expiresAt) })
    for (const room of this.rooms.values()) room.onOpen()
  }

  /** Sends `ping` when nothing was sent for heartbeat/2; gives the socket up when nothing arrived for heartbeat + 10 s. */
  private scheduleHeartbeat (): void {
    this.cancelHeartbeat?.()
    const now = this.clock.now()
    const pingAt = this.lastSent + this.heartbeatMs / 2
    const deadAt = this.lastReceived + this.heartbeatMs + DEAD_AFTER_EXTRA_MS
    this.cancelHeartbeat = this.after(Math.max(0, Math.min(pingAt, deadAt) - now), () => {
      this.cancelHeartbeat = null
      const at = this.clock.now()
      if (at >= this.lastReceived + this.heartbeatMs + DEAD_AFTER_EXTRA_MS) {
        this.disconnect(CLOSE_GIVEN_UP, true)
        return
      }
      if (at >= this.lastSent + this.heartbeatMs / 2) this.sendFrame({ type: 'ping' })
      this.scheduleHeartbeat()
    })
  }
}

function toChatError (err: unknown, code: string): ChatError {
  if (err instanceof Error) return typeof (err as Partial<ChatError>).code === 'string' ? err as ChatError : Object.assign(err, { code })
  return chatError(code, String(err))
}

/** `GET /auth/me` on the socket's origin, http(s) for ws(s). */
function authMeUrl (url: string): string | undefined {
  const match = /^(wss?|https?):\/\/([^/?#]+)/i.exec(url)
  if (match === null) return undefined
  const secure = /^(wss|https)$/i.test(match[1] ?? '')
  return `${secure ? 'https' : 'http'}://${match[2] ?? ''}/auth/me`
}

/** A clientMsgId, made once per send: a UUID where available, else 128 random bits. */
function newId (random: () => number): string {
  const crypto = g.crypto
  if (typeof crypto?.randomUUID === 'function') {
    try {
      return crypto.randomUUID()
    } catch {
      // Insecure context: fall through.
    }
  }
  const bytes = new Uint8Array(16)
  if (typeof crypto?.getRandomValues === 'function') crypto.getRandomValues(bytes)
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}
