import WebSocket from 'ws'
import { readBody } from './http.js'

/** How a test socket presents its token in the upgrade request (API.md allows all three). */
export type TokenVia = 'protocol' | 'header' | 'query'

export interface SocketOptions {
  readonly token?: string
  readonly via?: TokenVia
  /** Extra options for the `ws` client (autoPong, maxPayload, headers…). */
  readonly client?: WebSocket.ClientOptions
}

export interface Closed { readonly code: number, readonly reason: string }

/** A frame from the server; tests check its fields. */
export type Frame = Record<string, any> & { type: string }

export interface TestSocket {
  readonly ws: WebSocket
  /** Every frame received, in arrival order (taken or not). */
  readonly received: readonly Frame[]
  /** Sends an object as JSON, or a string / Buffer as is (Buffers go as binary frames). */
  send (frame: object | string | Buffer): void
  /**
   * The first frame not yet taken that matches (by `type`, or a predicate), removed from the
   * pending list; frames before it stay pending. Rejects after `ms` with what is pending.
   */
  next (match?: string | ((frame: Frame) => boolean), ms?: number): Promise<Frame>
  /** Sends the frame with a fresh `ref` and resolves with the reply carrying that ref. */
  request (frame: Record<string, unknown>, ms?: number): Promise<Frame>
  /** Frames received and not yet taken by `next`/`request`. */
  pending (): Frame[]
  /** Resolves when the socket closes, with the code and reason the client saw. */
  readonly closed: Promise<Closed>
  /** Closes from the client side and waits for the close to finish. */
  close (): Promise<Closed>
}

let refs = 0

/** The `ws://` URL of `/ws`, with `?token=` when the token goes in the query. */
export function socketUrl (baseUrl: string, options: SocketOptions = {}): string {
  const url = new URL('/ws', baseUrl.replace(/^http/, 'ws'))
  if (options.via === 'query' && options.token !== undefined) url.searchParams.set('token', options.token)
  return url.toString()
}

function clientArgs (options: SocketOptions): { protocols: string[] | undefined, client: WebSocket.ClientOptions } {
  const via = options.via ?? 'protocol'
  const client: WebSocket.ClientOptions = { ...options.client, headers: { ...options.client?.headers } }
  let protocols: string[] | undefined
  if (options.token !== undefined && via === 'protocol') protocols = ['chat.v1', `bearer.${options.token}`]
  if (options.token !== undefined && via === 'header') client.headers = { ...client.headers, authorization: `Bearer ${options.token}` }
  return { protocols, client }
}

/** Opens `/ws` and waits for the socket to open (not for `welcome`: take it with `next('welcome')`). */
export async function openSocket (baseUrl: string, options: SocketOptions = {}): Promise<TestSocket> {
  const { protocols, client } = clientArgs(options)
  const ws = new WebSocket(socketUrl(baseUrl, options), protocols, client)
  const received: Frame[] = []
  const waiting: Frame[] = []
  const waiters = new Set<() => void>()
  // ws hands over a Buffer: binaryType stays 'nodebuffer' (ArrayBuffer and Buffer[] are the other types).
  ws.on('message', (data, isBinary) => {
    const frame = isBinary ? { type: '<binary>', data } : JSON.parse((data as Buffer).toString()) as Frame
    received.push(frame)
    waiting.push(frame)
    for (const wake of [...waiters]) wake()
  })
  const closed = new Promise<Closed>((resolve) => {
    ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() })
      for (const wake of [...waiters]) wake()
    })
  })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode ?? '?'}`)))
  })
  ws.on('error', () => {})

  const next = async (match?: string | ((frame: Frame) => boolean), ms = 5000): Promise<Frame> => {
    const test = typeof match === 'string' ? (f: Frame) => f.type === match : match ?? (() => true)
    const take = (): Frame | undefined => {
      const index = waiting.findIndex(test)
      return index < 0 ? undefined : waiting.splice(index, 1)[0]
    }
    const found = take()
    if (found !== undefined) return found
    return await new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(wake)
        reject(new Error(`no frame matching ${String(match)} within ${ms} ms; pending: ${JSON.stringify(waiting).slice(0, 500)}; state ${ws.readyState}`))
      }, ms)
      const wake = (): void => {
        const frame = take()
        if (frame === undefined && ws.readyState !== WebSocket.CLOSED) return
        clearTimeout(timer)
        waiters.delete(wake)
        if (frame !== undefined) resolve(frame)
        else reject(new Error(`socket closed before a frame matching ${String(match)} arrived`))
      }
      waiters.add(wake)
    })
  }

  const send = (frame: object | string | Buffer): void => {
    if (Buffer.isBuffer(frame)) ws.send(frame, { binary: true })
    else ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  return {
    ws,
    received,
    send,
    next,
    async request (frame, ms) {
      const ref = `r${++refs}`
      send({ ...frame, ref })
      return await next((f) => f.ref === ref, ms)
    },
    pending: () => [...waiting],
    closed,
    async close () {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close()
      return await closed
    }
  }
}

/** Opens a socket and takes its `welcome`. */
export async function connect (baseUrl: string, token: string, options: Omit<SocketOptions, 'token'> = {}): Promise<TestSocket & { welcome: Frame }> {
  const socket = await openSocket(baseUrl, { ...options, token })
  const welcome = await socket.next('welcome')
  return Object.assign(socket, { welcome })
}

/** Attempts an upgrade that should be refused; resolves with the HTTP status and body (or rejects if it opened). */
export async function refusedUpgrade (baseUrl: string, options: SocketOptions = {}): Promise<{ status: number, body: any }> {
  const { protocols, client } = clientArgs(options)
  const ws = new WebSocket(socketUrl(baseUrl, options), protocols, client)
  return await new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.terminate()
      reject(new Error('the upgrade was accepted'))
    })
    ws.once('unexpected-response', (_req, res) => {
      readBody(res).then((body) => resolve({ status: res.statusCode ?? 0, body }), reject)
    })
    ws.once('error', reject)
  })
}

/** A socket as `connect` returns it: open, with its `welcome` taken. */
export type ConnectedSocket = TestSocket & { welcome: Frame }

/** A ping answered: every frame the server sent this socket before it has arrived. */
export async function barrier (socket: TestSocket): Promise<void> {
  const pong = await socket.request({ type: 'ping' })
  if (pong.type !== 'pong') throw new Error(`expected pong, got ${JSON.stringify(pong)}`)
}

let drains = 0

/**
 * Sends a ping and takes every frame up to its pong: returns what the socket had pending (received
 * and not yet taken) before the pong. Used to prove something did NOT arrive.
 */
export async function drainUntilPong (socket: TestSocket, ms = 3000): Promise<Frame[]> {
  const ref = `drain-${++drains}`
  socket.send({ type: 'ping', ref })
  const before: Frame[] = []
  for (;;) {
    const frame = await socket.next(undefined, ms)
    if (frame.type === 'pong' && frame.ref === ref) return before
    before.push(frame)
  }
}

/** The first matching frame within `ms`, or null: lets a missing frame fail one assertion, not the whole test. */
export async function nextOrNull (socket: TestSocket, match: (f: Frame) => boolean, ms: number): Promise<Frame | null> {
  try {
    return await socket.next(match, ms)
  } catch {
    return null
  }
}

/** The `message` events of one room this socket received, in arrival order (taken or not). */
export function messageEvents (socket: TestSocket, room: string): Frame[] {
  return socket.received.filter((f) => f.type === 'message' && f.room === room)
}

/** The acks this socket received, of one room or of all, in arrival order. */
export function receivedAcks (socket: TestSocket, room?: string): Frame[] {
  return socket.received.filter((f) => f.type === 'ack' && (room === undefined || f.room === room))
}

/** The error frames this socket received, in arrival order. */
export function receivedErrors (socket: TestSocket): Frame[] {
  return socket.received.filter((f) => f.type === 'error')
}
