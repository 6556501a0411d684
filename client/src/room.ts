import { Emitter } from './emitter.js'
import { chatError, isFinal } from './errors.js'
import type { Ack, ChatError, Message, OnlineUser, ReadResult, RoomEvents, User } from './types.js'

/** A server frame as parsed: the fields are checked where they are used. */
export type Frame = Record<string, unknown> & { type: string }

export interface Reply {
  reply: (frame: Frame) => void
  error: (err: ChatError) => void
}

/** What a room needs of its client. Everything timed goes through `after`, which belongs to the current connection. */
export interface RoomHost {
  readonly closed: boolean
  isOpen: () => boolean
  user: () => User | undefined
  request: (frame: Record<string, unknown>, reply: Reply) => void
  sendFrame: (frame: Record<string, unknown>) => void
  after: (ms: number, fn: () => void) => () => void
  backoff: (attempt: number) => number
  now: () => number
  newId: () => string
  readonly gapTimeout: number
}

interface Waiter<T> {
  resolve: (value: T) => void
  reject: (err: ChatError) => void
}

/** A send or read waiting for its answer; `inflight` on the current connection, `blocked` while backing off after a retryable error. */
interface Pending<T> extends Waiter<T> {
  inflight: boolean
  blocked: boolean
  attempt: number
}

interface Outgoing extends Pending<Ack> {
  body: string
  clientMsgId: string
}

interface ReadRequest extends Pending<ReadResult> {
  seq: number
}

/** Typing starts are sent again at most this often while typing goes on (the server relays at most every 3 s). */
const TYPING_REFRESH_MS = 3000
/** Typing stops after this long without a `typing(true)`, as the server would do on its own. */
const TYPING_IDLE_MS = 5000
/** More held messages than this: stop waiting for the gap to fill and re-join at once. */
const MAX_HELD = 5000

/**
 * One room of a `ChatClient`, the same object for the same id. It keeps the join intent, the
 * cursor (the last seq delivered), the outbox of unacked sends and the presence list, and
 * survives reconnects: after each one it joins again with `afterSeq` = the cursor.
 */
export class Room extends Emitter<RoomEvents> {
  readonly id: string
  /** `[{userId, username}]` online in the room, from `joined.online` and `presence` events. */
  online: OnlineUser[] = []
  /** The caller's read position, from `joined` and `read` replies. */
  readSeq = 0

  private readonly host: RoomHost
  private wanted = false
  private status: 'idle' | 'joining' | 'joined' | 'leaving' = 'idle'
  private cursor: number | null = null
  /** The highest seq known to exist, to notice a gap nothing is buffered for. */
  private maxSeen = 0
  private held = new Map<number, Message>()
  private cancelGap: (() => void) | null = null
  private joinAttempt = 0
  private joinWaiters: Array<Waiter<void>> = []
  private leaveWaiters: Array<Waiter<void>> = []
  private outbox: Outgoing[] = []
  private reads: ReadRequest[] = []
  private typingOn = false
  private typingSentAt = 0
  private cancelTypingIdle: (() => void) | null = null

  /** Made by `client.room(id)`, which keeps one per id. */
  constructor (id: string, host: RoomHost) {
    super()
    this.id = id
    this.host = host
  }

  /** The last seq delivered by `on('message')` (null before the first join). */
  get lastSeq (): number | null {
    return this.cursor
  }

  get joined (): boolean {
    return this.status === 'joined'
  }

  /** Resolves once joined; joins again by itself after every reconnect. Calls made while connecting are queued, never doubled. */
  join (): Promise<void> {
    if (this.host.closed) return Promise.reject(chatError('closed', 'the client is closed'))
    this.wanted = true
    if (this.status === 'joined') return Promise.resolve()
    return new Promise((resolve, reject) => {
      this.joinWaiters.push({ resolve, reject })
      if (this.host.isOpen() && (this.status === 'idle' || this.status === 'leaving')) this.sendJoin()
    })
  }

  /** Leaves and drops the join intent. Sends still unacked when the server confirms are rejected with `forbidden`. */
  leave (): Promise<void> {
    this.wanted = false
    this.stopTypingLocally()
    if (this.host.closed) return Promise.resolve()
    this.rejectWaiters(this.joinWaiters, chatError('forbidden', 'left the room'))
    if (!this.host.isOpen() || this.status === 'idle') {
      this.status = 'idle'
      this.failPending(chatError('forbidden', 'left the room'))
      return Promise.resolve()
    }
    return new Promise((resolve, reject) => {
      this.leaveWaiters.push({ resolve, reject })
      if (this.status === 'leaving') return
      this.status = 'leaving'
      // `leave` always answers `left` (also for a room not joined), so an error here is a bad frame: done either way.
      this.host.request({ type: 'leave', room: this.id }, { reply: () => { this.onLeft() }, error: () => { this.onLeft() } })
    })
  }

  /** Resolves with the ack once stored. While disconnected it waits and is sent again with the same clientMsgId. */
  send (body: string): Promise<Ack> {
    if (this.host.closed) return Promise.reject(chatError('closed', 'the client is closed'))
    if (!this.wanted) return Promise.reject(chatError('forbidden', 'join the room first'))
    // The server ends typing when a message arrives; no `typing false` needed.
    this.stopTypingLocally()
    return new Promise((resolve, reject) => {
      const entry: Outgoing = { body, clientMsgId: this.host.newId(), resolve, reject, inflight: false, blocked: false, attempt: 0 }
      this.outbox.push(entry)
      if (this.ready()) this.sendMessage(entry)
    })
  }

  /** Moves the caller's read position (never backwards); resolves with the position stored. */
  read (seq: number): Promise<ReadResult> {
    if (this.host.closed) return Promise.reject(chatError('closed', 'the client is closed'))
    if (!this.wanted) return Promise.reject(chatError('forbidden', 'join the room first'))
    return new Promise((resolve, reject) => {
      const entry: ReadRequest = { seq, resolve, reject, inflight: false, blocked: false, attempt: 0 }
      this.reads.push(entry)
      if (this.ready()) this.sendRead(entry)
    })
  }

  /** `typing(true)` on each keystroke: sent at once, refreshed at most every 3 s, stopped after 5 s without one. `typing(false)` stops now. */
  typing (on: boolean): void {
    if (!on) {
      if (this.typingOn && this.ready()) this.host.sendFrame({ type: 'typing', room: this.id, typing: false })
      this.stopTypingLocally()
      return
    }
    if (!this.ready()) return
    const now = this.host.now()
    if (!this.typingOn || now - this.typingSentAt >= TYPING_REFRESH_MS) {
      this.host.sendFrame({ type: 'typing', room: this.id, typing: true })
      this.typingSentAt = now
    }
    this.typingOn = true
    this.cancelTypingIdle?.()
    this.cancelTypingIdle = this.host.after(TYPING_IDLE_MS, () => {
      this.cancelTypingIdle = null
      this.typing(false)
    })
  }

  private ready (): boolean {
    return this.status === 'joined' && this.host.isOpen()
  }

  private stopTypingLocally (): void {
    this.typingOn = false
    this.cancelTypingIdle?.()
    this.cancelTypingIdle = null
  }

  private sendJoin (): void {
    this.status = 'joining'
    const frame: Record<string, unknown> = { type: 'join', room: this.id }
    if (this.cursor !== null) frame.afterSeq = this.cursor
    this.host.request(frame, { reply: (f) => { this.onJoined(f) }, error: (err) => { this.onJoinError(err) } })
  }

  private onJoined (frame: Frame): void {
    if (this.status !== 'joining') return
    this.status = 'joined'
    this.joinAttempt = 0
    this.online = Array.isArray(frame.online) ? (frame.online as OnlineUser[]).map((u) => ({ userId: u.userId, username: u.username })) : []
    if (typeof frame.readSeq === 'number') this.readSeq = frame.readSeq
    const lastSeq = typeof frame.lastSeq === 'number' ? frame.lastSeq : 0
    // A first join starts at the room's end (history is for REST); a resume has its cursor already.
    if (this.cursor === null) this.cursor = lastSeq
    this.maxSeen = Math.max(this.maxSeen, lastSeq)
    this.drain()
    const waiters = this.joinWaiters
    this.joinWaiters = []
    for (const w of waiters) w.resolve()
    if (this.status !== 'joined') return
    for (const entry of this.outbox) if (!entry.inflight && !entry.blocked) this.sendMessage(entry)
    for (const entry of this.reads) if (!entry.inflight && !entry.blocked) this.sendRead(entry)
  }

  private onJoinError (err: ChatError): void {
    if (this.status !== 'joining') return
    this.status = 'idle'
    if (!isFinal(err.code)) {
      this.host.after(this.host.backoff(this.joinAttempt++), () => {
        if (this.wanted && this.status === 'idle' && this.host.isOpen()) this.sendJoin()
      })
      return
    }
    this.wanted = false
    this.rejectWaiters(this.joinWaiters, err)
    this.failPending(err)
  }

  private onLeft (): void {
    if (this.status === 'leaving') this.left()
    const waiters = this.leaveWaiters
    this.leaveWaiters = []
    for (const w of waiters) w.resolve()
  }

  private left (): void {
    this.status = 'idle'
    this.online = []
    this.held.clear()
    this.cancelGap?.()
    this.cancelGap = null
    if (!this.wanted) this.failPending(chatError('forbidden', 'left the room'))
  }

  private sendMessage (entry: Outgoing): void {
    entry.inflight = true
    this.host.request({ type: 'message', room: this.id, body: entry.body, clientMsgId: entry.clientMsgId }, {
      reply: (frame) => { this.onAck(entry, frame) },
      error: (err) => { this.onPendingError(this.outbox, entry, err, () => { this.sendMessage(entry) }) }
    })
  }

  private sendRead (entry: ReadRequest): void {
    entry.inflight = true
    this.host.request({ type: 'read', room: this.id, seq: entry.seq }, {
      reply: (frame) => {
        if (!remove(this.reads, entry)) return
        const readSeq = typeof frame.readSeq === 'number' ? frame.readSeq : entry.seq
        this.readSeq = Math.max(this.readSeq, readSeq)
        entry.resolve({ room: this.id, readSeq })
      },
      error: (err) => { this.onPendingError(this.reads, entry, err, () => { this.sendRead(entry) }) }
    })
  }

  private onPendingError<T> (list: Array<Pending<T>>, entry: Pending<T>, err: ChatError, resend: () => void): void {
    entry.inflight = false
    if (isFinal(err.code)) {
      if (remove(list, entry)) entry.reject(err)
      return
    }
    entry.blocked = true
    this.host.after(this.host.backoff(entry.attempt++), () => {
      entry.blocked = false
      if (list.includes(entry) && this.ready()) resend()
    })
  }

  private onAck (entry: Outgoing, frame: Frame): void {
    // Already settled by the replay of the stored message after a reconnect: resolve once.
    if (!remove(this.outbox, entry)) return
    const ack: Ack = {
      room: this.id,
      id: String(frame.id),
      seq: Number(frame.seq),
      clientMsgId: entry.clientMsgId,
      createdAt: String(frame.createdAt)
    }
    entry.resolve(ack)
    const user = this.host.user()
    this.deliver({ ...ack, userId: user?.id ?? '', username: user?.username ?? '', body: entry.body })
  }

  /** @internal a `message` frame for this room. */
  onMessage (message: Message): void {
    if (message.clientMsgId !== null && message.userId === this.host.user()?.id) {
      // The user's own message, replayed after a reconnect: stored already, so its send is done.
      const entry = this.outbox.find((e) => e.clientMsgId === message.clientMsgId)
      if (entry !== undefined) {
        remove(this.outbox, entry)
        entry.resolve({ room: this.id, id: message.id, seq: message.seq, clientMsgId: message.clientMsgId, createdAt: message.createdAt })
      }
    }
    this.deliver(message)
  }

  /** @internal an `ack` whose ref is unknown (its request belonged to no live connection). */
  onStrayAck (frame: Frame): void {
    const entry = this.outbox.find((e) => e.clientMsgId === frame.clientMsgId)
    if (entry !== undefined) this.onAck(entry, frame)
  }

  /** Delivers in seq order, each seq once: older or repeated seqs are dropped, later ones held until the gap fills. */
  private deliver (message: Message): void {
    const seq = message.seq
    if (!Number.isInteger(seq)) return
    this.maxSeen = Math.max(this.maxSeen, seq)
    if (this.cursor !== null && seq <= this.cursor) return
    this.held.set(seq, message)
    if (this.cursor !== null) this.drain()
  }

  private drain (): void {
    const cursor0 = this.cursor
    if (cursor0 === null) return
    for (const seq of this.held.keys()) if (seq <= cursor0) this.held.delete(seq)
    let next = this.held.get(cursor0 + 1)
    while (next !== undefined) {
      this.held.delete(next.seq)
      this.cursor = next.seq
      this.emit('message', next)
      if (this.cursor === null) return
      next = this.held.get(this.cursor + 1)
    }
    this.checkGap()
  }

  /** A gap that stays (a lost frame) is filled by joining again with `afterSeq`; during a join the replay is still arriving. */
  private checkGap (): void {
    const gap = this.cursor !== null && this.maxSeen > this.cursor
    if (!gap || this.status !== 'joined') {
      if (!gap) {
        this.cancelGap?.()
        this.cancelGap = null
      }
      return
    }
    if (this.held.size > MAX_HELD) {
      this.held.clear()
      this.sendJoin()
      return
    }
    this.cancelGap ??= this.host.after(this.host.gapTimeout, () => {
      this.cancelGap = null
      if (this.status === 'joined' && this.cursor !== null && this.maxSeen > this.cursor) this.sendJoin()
    })
  }

  /** @internal */
  onPresence (frame: Frame): void {
    if (typeof frame.userId !== 'string' || typeof frame.username !== 'string') return
    const event = { room: this.id, userId: frame.userId, username: frame.username, status: frame.status === 'online' ? 'online' as const : 'offline' as const }
    if (this.status !== 'idle') {
      const others = this.online.filter((u) => u.userId !== event.userId)
      this.online = event.status === 'online' ? [...others, { userId: event.userId, username: event.username }] : others
    }
    this.emit('presence', event)
  }

  /** @internal */
  onTyping (frame: Frame): void {
    this.emit('typing', { room: this.id, userId: String(frame.userId), username: String(frame.username), typing: frame.typing === true })
  }

  /** @internal */
  onReceipt (frame: Frame): void {
    this.emit('receipt', { room: this.id, userId: String(frame.userId), username: String(frame.username), readSeq: Number(frame.readSeq) })
  }

  /** @internal a `left` the room did not ask for: the server ended the membership. */
  onRemoved (frame: Frame): void {
    this.wanted = false
    this.stopTypingLocally()
    this.left()
    this.emit('left', { room: this.id, reason: typeof frame.reason === 'string' ? frame.reason : 'removed' })
  }

  /** @internal the socket is open and welcomed. */
  onOpen (): void {
    if (this.wanted) this.sendJoin()
  }

  /** @internal the connection is gone: everything it had in flight is sent again on the next one. */
  onDisconnect (): void {
    if (this.status === 'leaving') this.onLeft()
    this.status = 'idle'
    this.held.clear()
    this.maxSeen = this.cursor ?? 0
    // Timers were cleared with the connection.
    this.cancelGap = null
    this.typingOn = false
    this.cancelTypingIdle = null
    this.joinAttempt = 0
    for (const entry of [...this.outbox, ...this.reads]) {
      entry.inflight = false
      entry.blocked = false
    }
  }

  /** @internal the client is closing: every promise settles, every listener goes. */
  shutdown (err: ChatError): void {
    this.wanted = false
    this.status = 'idle'
    this.rejectWaiters(this.joinWaiters, err)
    this.failPending(err)
    const waiters = this.leaveWaiters
    this.leaveWaiters = []
    for (const w of waiters) w.resolve()
    this.held.clear()
    this.removeAllListeners()
  }

  private rejectWaiters (list: Array<Waiter<void>>, err: ChatError): void {
    const waiters = list.splice(0)
    for (const w of waiters) w.reject(err)
  }

  private failPending (err: ChatError): void {
    const outbox = this.outbox
    const reads = this.reads
    this.outbox = []
    this.reads = []
    for (const entry of outbox) entry.reject(err)
    for (const entry of reads) entry.reject(err)
  }
}

function remove<T> (list: T[], item: T): boolean {
  const i = list.indexOf(item)
  if (i === -1) return false
  list.splice(i, 1)
  return true
}
