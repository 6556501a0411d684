// What the cluster tests do on the sockets: join on a given node, send paced streams of messages
// while counting acks, wait with a deadline, and check what each socket received against what was
// acked. Black-box: only the public surface (socket frames), nothing from src/.
import type { Test } from 'tap'
import WebSocket from 'ws'
import { delay, sameSeqs, type Account } from './chat.js'
import type { ClusterNode } from './cluster.js'
import { connect, messageEvents, type ConnectedSocket, type Frame, type TestSocket } from './socket.js'

/** Polls `check` every `everyMs` until it holds (true) or `ms` pass (false): for waits whose outcome is then asserted. */
export async function settle (check: () => boolean, ms: number, everyMs = 20): Promise<boolean> {
  const deadline = Date.now() + ms
  for (;;) {
    if (check()) return true
    if (Date.now() > deadline) return false
    await delay(everyMs)
  }
}

/** A socket on one node, as the user named; terminated at `t`'s teardown. */
export async function connectOn (t: Test, node: ClusterNode, user: Account): Promise<ConnectedSocket> {
  const socket = await connect(node.baseUrl, user.token)
  t.teardown(() => { socket.ws.terminate() })
  return socket
}

export interface JoinedSocket {
  readonly socket: ConnectedSocket
  readonly joined: Frame
  readonly user: Account
  readonly node: ClusterNode
}

/**
 * Connects `user` on `node` and joins `room` (with `afterSeq` when given); throws unless the
 * reply is `joined`, since everything after it would be meaningless.
 */
export async function joinOn (t: Test, node: ClusterNode, user: Account, room: string, options: { afterSeq?: number, socket?: ConnectedSocket } = {}): Promise<JoinedSocket> {
  const socket = options.socket ?? await connectOn(t, node, user)
  const frame: Record<string, unknown> = { type: 'join', room }
  if (options.afterSeq !== undefined) frame.afterSeq = options.afterSeq
  const joined = await socket.request(frame, 15_000)
  if (joined.type !== 'joined') throw new Error(`${user.username} on ${node.name}: join ${room} answered ${JSON.stringify(joined)}`)
  return { socket, joined, user, node }
}

/** The seqs of the room's `message` events this socket received, in arrival order. */
export function seqsOf (socket: TestSocket, room: string): number[] {
  return messageEvents(socket, room).map((f) => f.seq as number)
}

/** The frames of one type and room this socket received, matching `extra` field by field. */
export function framesOf (socket: TestSocket, type: string, room: string, extra: Record<string, unknown> = {}): Frame[] {
  return socket.received.filter((f) => f.type === type && f.room === room && Object.entries(extra).every(([k, v]) => f[k] === v))
}

export interface SenderOptions {
  /** clientMsgIds are `${prefix}-${n}`; bodies say the same. */
  readonly prefix: string
  /** How many to send; unlimited (until `stop`) when absent. */
  readonly count?: number
  /** Messages per tick, and the tick. */
  readonly chunk: number
  readonly everyMs: number
}

export interface Sender {
  readonly socket: TestSocket
  /** Acks by clientMsgId (= ref), as they arrive. */
  readonly acks: Map<string, Frame>
  /** Error replies by clientMsgId. */
  readonly errors: Map<string, Frame>
  sent (): number
  /** Every message sent so far has its reply (ack or error). */
  answered (): boolean
  /** Stops sending (what is sent stays sent). Also done at teardown. */
  stop (): void
  /** Resolves when `count` messages are sent, or `stop` was called. */
  readonly finished: Promise<void>
}

/** Sends `chunk` messages every `everyMs` from `socket` into `room`, not waiting for acks, ref = clientMsgId. */
export function startSender (t: Test, socket: TestSocket, room: string, options: SenderOptions): Sender {
  const acks = new Map<string, Frame>()
  const errors = new Map<string, Frame>()
  socket.ws.on('message', (data, isBinary) => {
    if (isBinary) return
    const frame = JSON.parse((data as Buffer).toString()) as Frame
    if (typeof frame.ref !== 'string' || !frame.ref.startsWith(`${options.prefix}-`)) return
    if (frame.type === 'ack') acks.set(frame.ref, frame)
    else if (frame.type === 'error') errors.set(frame.ref, frame)
  })
  let sent = 0
  let finish: () => void = () => {}
  const finished = new Promise<void>((resolve) => { finish = resolve })
  const stop = (): void => {
    clearInterval(timer)
    finish()
  }
  const timer = setInterval(() => {
    for (let k = 0; k < options.chunk; k++) {
      if ((options.count !== undefined && sent >= options.count) || socket.ws.readyState !== WebSocket.OPEN) break
      const clientMsgId = `${options.prefix}-${sent++}`
      socket.send({ type: 'message', room, body: `${clientMsgId} body`, clientMsgId, ref: clientMsgId })
    }
    if (options.count !== undefined && sent >= options.count) stop()
  }, options.everyMs)
  t.teardown(stop)
  return {
    socket,
    acks,
    errors,
    sent: () => sent,
    answered: () => acks.size + errors.size >= sent,
    stop,
    finished
  }
}

/** Every seq the senders were acked, ascending. */
export function ackedSeqs (senders: readonly Sender[]): number[] {
  return senders.flatMap((s) => [...s.acks.values()].map((a) => a.seq as number)).sort((a, b) => a - b)
}

/** The seqs a socket should hold as `message` events: every expected seq but its own acked ones. */
function expectedFor (socket: TestSocket, room: string, expected: readonly number[]): number[] {
  const own = new Set(socket.received.filter((f) => f.type === 'ack' && f.room === room).map((f) => f.seq as number))
  return expected.filter((s) => !own.has(s))
}

/** Waits (bounded) until each socket has received as many distinct seqs as it should; true if all did. */
export async function allDelivered (sockets: readonly TestSocket[], room: string, expected: readonly number[], ms: number): Promise<boolean> {
  const wanted = sockets.map((s) => new Set(expectedFor(s, room, expected)))
  return await settle(() => sockets.every((s, i) => {
    const want = wanted[i]!
    let have = 0
    for (const seq of new Set(seqsOf(s, room))) if (want.has(seq)) have++
    return have >= want.size
  }), ms)
}

/**
 * Asserts a socket's `message` events of the room are exactly `expected` (its own acked seqs left
 * out: a sender gets `ack` for those), in arrival order: each once, ascending, no gap.
 */
export function checkStream (t: Test, socket: TestSocket, room: string, expected: readonly number[], label: string): void {
  const want = expectedFor(socket, room, expected)
  sameSeqs(t, seqsOf(socket, room), want, `${label}: ${want.length} seqs, each once, in order, no gap`)
}

/** Asserts the socket is still open and joined the room once: whatever it holds came without a rejoin. */
export function checkNoRejoin (t: Test, socket: TestSocket, room: string, label: string): void {
  t.equal(socket.ws.readyState, WebSocket.OPEN, `${label}: still the same open socket`)
  t.equal(framesOf(socket, 'joined', room).length, 1, `${label}: joined once (no rejoin)`)
}
