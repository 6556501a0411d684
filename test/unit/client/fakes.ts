// A fake WebSocket and a fake clock for the client's unit tests: the test plays the server.
import type { ChatClientOptions, Clock } from '../../../client/src/index.js'
import { ChatClient } from '../../../client/src/index.js'

type Frame = Record<string, any>

/** Timers run only when the test advances time; `pending` counts what is still scheduled. */
export class FakeClock implements Clock {
  time = 1_800_000_000_000
  private nextId = 1
  private timers = new Map<number, { at: number, fn: () => void }>()
  /** What random() returns next (a function so tests can vary it). */
  rand: () => number = () => 0.5

  now = (): number => this.time
  random = (): number => this.rand()
  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = this.nextId++
    this.timers.set(id, { at: this.time + Math.max(0, ms), fn })
    return id
  }

  clearTimeout = (handle: unknown): void => { this.timers.delete(handle as number) }

  get pending (): number {
    return this.timers.size
  }

  /** The delays from now of the pending timers, sorted. */
  delays (): number[] {
    return [...this.timers.values()].map((t) => t.at - this.time).sort((a, b) => a - b)
  }

  /** Moves time forward by `ms`, running every timer that falls due, in order (also ones scheduled meanwhile). */
  async advance (ms: number): Promise<void> {
    const end = this.time + ms
    await flush()
    for (;;) {
      let due: [number, { at: number, fn: () => void }] | undefined
      for (const entry of this.timers) if (entry[1].at <= end && (due === undefined || entry[1].at < due[1].at)) due = entry
      if (due === undefined) break
      this.timers.delete(due[0])
      this.time = due[1].at
      due[1].fn()
      await flush()
    }
    this.time = end
    await flush()
  }
}

/** Lets pending promise callbacks (token functions, fetch answers) run. */
export async function flush (): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve))
}

/** A WebSocket whose server side is the test. Every instance is recorded in `sockets`. */
export class FakeWebSocket {
  static sockets: FakeWebSocket[] = []
  readonly url: string
  readonly protocols: string[]
  readyState = 0
  readonly sent: Frame[] = []
  closedWith: number | null = null
  /** Answer `ping` with `pong` like the server does (off to play a dead server). */
  autoPong = true
  onopen: ((event: unknown) => void) | null = null
  onmessage: ((event: { data: unknown }) => void) | null = null
  onclose: ((event: { code: number, reason?: string }) => void) | null = null
  onerror: ((event: unknown) => void) | null = null

  constructor (url: string, protocols: string[]) {
    this.url = url
    this.protocols = protocols
    FakeWebSocket.sockets.push(this)
  }

  send (data: string): void {
    if (this.readyState !== 1) throw new Error('not open')
    const frame = JSON.parse(data) as Frame
    this.sent.push(frame)
    if (frame.type === 'ping' && this.autoPong) this.deliver({ type: 'pong' })
  }

  close (code?: number): void {
    this.closedWith = code ?? 1005
    this.readyState = 3
  }

  /** The server accepts: `open`, then `welcome`. */
  accept (welcome: Partial<Frame> = {}): void {
    this.readyState = 1
    this.onopen?.({})
    this.deliver({ type: 'welcome', user: { id: '1', username: 'alice' }, heartbeat: 30, expiresAt: new Date(Date.now() + 3_600_000).toISOString(), ...welcome })
  }

  deliver (frame: Frame): void {
    this.onmessage?.({ data: JSON.stringify(frame) })
  }

  /** The server (or the network) closes the socket. */
  serverClose (code: number): void {
    this.readyState = 3
    this.onclose?.({ code })
  }

  /** The frames of one type the client sent. */
  frames (type: string): Frame[] {
    return this.sent.filter((f) => f.type === type)
  }

  /** Answers the last `join` for `room` with `joined`, after replaying `replay`. */
  answerJoin (room: string, lastSeq: number, replay: Frame[] = [], online: Frame[] = []): Frame {
    const join = this.frames('join').filter((f) => f.room === room).at(-1)
    if (join === undefined) throw new Error(`no join of ${room}`)
    for (const message of replay) this.deliver(message)
    this.deliver({ type: 'joined', room, lastSeq, online, readSeq: 0, ref: join.ref })
    return join
  }
}

export function message (room: string, seq: number, extra: Frame = {}): Frame {
  return { type: 'message', id: String(1000 + seq), room, seq, userId: '2', username: 'bob', body: `m${seq}`, clientMsgId: null, createdAt: new Date(0).toISOString(), ...extra }
}

/** A client on the fake socket and clock; the last socket it made is `last()`. */
export function makeClient (options: Partial<ChatClientOptions> = {}): { client: ChatClient, clock: FakeClock, last: () => FakeWebSocket } {
  const clock = (options.clock as FakeClock | undefined) ?? new FakeClock()
  const client = new ChatClient({
    url: 'ws://chat.test/ws',
    token: 'tok',
    WebSocket: FakeWebSocket,
    fetch: async () => ({ status: 200 }),
    ...options,
    clock
  })
  const last = (): FakeWebSocket => {
    const ws = FakeWebSocket.sockets.at(-1)
    if (ws === undefined) throw new Error('no socket yet')
    return ws
  }
  return { client, clock, last }
}
