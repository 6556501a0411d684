// The one socket load generator for both servers: sockets that authenticate on the upgrade, wait for
// `welcome`, join their room, then send `message` frames at a steady rate and time each `ack`.
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'

export interface Counters {
  /** ref -> send time (performance.now()) of every message not yet acked or refused. */
  pending: Map<string, number>
  /** refs given up on at the end of a step: their acks, if they still come, are late, not duplicates. */
  abandoned: Set<string>
  latencies: number[]
  refused: Map<string, number>
  duplicates: number
  late: number
  closes: Map<number, number>
  /** the first ack received, kept for the shape check against API.md */
  firstAck?: Record<string, unknown>
}

export function newCounters(): Counters {
  return { pending: new Map(), abandoned: new Set(), latencies: [], refused: new Map(), duplicates: 0, late: 0, closes: new Map() }
}

export interface Client {
  socket: WebSocket
  room: string
}

function bump<K>(map: Map<K, number>, key: K): void {
  map.set(key, (map.get(key) ?? 0) + 1)
}

function rawText(data: WebSocket.RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8')
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8')
  return Buffer.from(data).toString('utf8')
}

function onFrame(counters: Counters, data: WebSocket.RawData): void {
  const frame = JSON.parse(rawText(data)) as { type?: unknown; ref?: unknown; code?: unknown }
  if (typeof frame.ref !== 'string') return
  const ref = frame.ref
  if (frame.type === 'ack') {
    counters.firstAck ??= frame
    const sentAt = counters.pending.get(ref)
    if (sentAt !== undefined) {
      counters.pending.delete(ref)
      counters.latencies.push(performance.now() - sentAt)
    } else if (counters.abandoned.has(ref)) {
      counters.abandoned.delete(ref)
      counters.late++
    } else {
      counters.duplicates++
    }
  } else if (frame.type === 'error' && counters.pending.delete(ref)) {
    bump(counters.refused, String(frame.code))
  }
}

/** Opens one socket, waits for `welcome`, joins `room` and waits for `joined`. */
export function connect(wsUrl: string, token: string, room: string, counters: Counters): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false })
    const timer = setTimeout(() => {
      socket.terminate()
      reject(new Error(`socket for ${room}: no joined within 15 s`))
    }, 15_000)
    const fail = (error: Error): void => {
      clearTimeout(timer)
      reject(error)
    }
    socket.once('error', fail)
    socket.once('unexpected-response', (_req, res) => fail(new Error(`upgrade refused: HTTP ${res.statusCode}`)))
    const handshake = (data: WebSocket.RawData): void => {
      const frame = JSON.parse(rawText(data)) as { type?: unknown; ref?: unknown; code?: unknown }
      if (frame.type === 'welcome') {
        socket.send(JSON.stringify({ type: 'join', room, ref: 'join' }))
      } else if (frame.ref === 'join' && frame.type === 'joined') {
        clearTimeout(timer)
        socket.off('message', handshake)
        socket.off('error', fail)
        socket.on('message', (d) => onFrame(counters, d))
        socket.on('error', () => undefined)
        socket.on('close', (code) => bump(counters.closes, code))
        resolve({ socket, room })
      } else if (frame.ref === 'join') {
        fail(new Error(`join ${room}: ${String(frame.type)} ${String(frame.code)}`))
      }
    }
    socket.on('message', handshake)
  })
}

/** Connects one client per room, `parallel` handshakes at a time. */
export async function connectAll(wsUrl: string, token: string, rooms: string[], counters: Counters, parallel = 20): Promise<Client[]> {
  const clients: Client[] = []
  for (let i = 0; i < rooms.length; i += parallel) {
    clients.push(...(await Promise.all(rooms.slice(i, i + parallel).map((room) => connect(wsUrl, token, room, counters)))))
  }
  return clients
}

export function closeAll(clients: Client[]): void {
  for (const { socket } of clients) socket.terminate()
}

let nextRef = 0

/** Sends one `message` frame and starts its clock; returns its ref. */
export function sendMessage(client: Client, body: string, counters: Counters, clientMsgId?: string): string {
  const ref = String(++nextRef)
  const id = clientMsgId ?? `c-${ref}`
  counters.pending.set(ref, performance.now())
  client.socket.send(`{"type":"message","room":${JSON.stringify(client.room)},"body":${JSON.stringify(body)},"clientMsgId":"${id}","ref":"${ref}"}`)
  return ref
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Waits until nothing is pending or `timeoutMs` passed; returns how many are still pending. */
export async function drain(counters: Counters, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs
  while (counters.pending.size > 0 && performance.now() < deadline) await sleep(5)
  return counters.pending.size
}

/** Stores `count` messages through one socket, `window` in flight at a time (history fill). */
export async function sendMany(client: Client, count: number, window: number, counters: Counters, bodyOf: (i: number) => string): Promise<void> {
  let i = 0
  while (i < count) {
    while (i < count && counters.pending.size < window) {
      i++
      sendMessage(client, bodyOf(i), counters, `h-${i}`)
    }
    await sleep(1)
  }
  const left = await drain(counters, 30_000)
  if (left > 0 || counters.refused.size > 0) throw new Error(`fill: ${left} unacked, refused ${JSON.stringify([...counters.refused])}`)
}
