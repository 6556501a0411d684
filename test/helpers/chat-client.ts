// Running the JavaScript client (client/) in Node against spawned servers: a `ws` WebSocket that
// records what the client sent and received on each connection, so that a failure can say which
// frames led to it (the client is a black box).
import WebSocket from 'ws'

/** What one connection of the client carried. */
export interface Connection {
  readonly n: number
  readonly startedAt: number
  openedAt: number | null
  closed: { code: number, at: number } | null
  /** Frames the client sent and received, parsed, in order. */
  readonly out: Array<Record<string, any>>
  readonly in: Array<Record<string, any>>
}

/** `[1,2,3,5,7,8]` as `1-3,5,7-8`: seq lists short enough for a failure message. */
export function ranges (numbers: readonly number[]): string {
  const parts: string[] = []
  for (let i = 0; i < numbers.length;) {
    let j = i
    while (j + 1 < numbers.length && numbers[j + 1] === numbers[j]! + 1) j++
    parts.push(i === j ? String(numbers[i]) : `${numbers[i]}-${numbers[j]}`)
    i = j + 1
  }
  return parts.join(',')
}

function parse (data: unknown): Record<string, any> {
  try {
    return JSON.parse(String(data)) as Record<string, any>
  } catch {
    return { type: '<not JSON>', data: String(data).slice(0, 80) }
  }
}

/** One line per connection: how it ended, the joins, the seqs of messages and acks, the errors. */
export function describeConnections (connections: readonly Connection[], t0: number): string {
  return connections.map((c) => {
    const joins = c.out.filter((f) => f.type === 'join').map((f) => `join(${String(f.room)} after ${String(f.afterSeq)})`)
    const sent = c.out.filter((f) => f.type === 'message')
    const seqs = (type: string): string => ranges(c.in.filter((f) => f.type === type).map((f) => f.seq as number))
    const joined = c.in.filter((f) => f.type === 'joined').map((f) => `joined(lastSeq ${String(f.lastSeq)})`)
    const errors = c.in.filter((f) => f.type === 'error').map((f) => `error ${String(f.code)}: ${String(f.message)}`)
    const when = (at: number | null | undefined): string => at === null || at === undefined ? '-' : `+${at - t0}ms`
    return `#${c.n} started ${when(c.startedAt)} opened ${when(c.openedAt)} closed ${c.closed === null ? 'no' : `${c.closed.code} ${when(c.closed.at)}`}; ` +
      `out: ${[...joins, `${sent.length} messages`].join(' ')}; in: ${joined.join(' ')} messages [${seqs('message')}] acks [${seqs('ack')}] ${errors.join('; ')}`
  }).join('\n')
}

/**
 * A `ws` WebSocket class for the client's `WebSocket` option that records every connection the
 * client makes. It only listens (`message`, `close`), so the client sees the socket unchanged.
 */
export function recordingWebSocket (connections: Connection[]): new (address: string, protocols?: string | string[]) => WebSocket {
  return class RecordingWebSocket extends WebSocket {
    readonly #connection: Connection

    constructor (address: string | URL, protocols?: string | string[], options?: WebSocket.ClientOptions) {
      super(address, protocols, options)
      const connection: Connection = { n: connections.length + 1, startedAt: Date.now(), openedAt: null, closed: null, out: [], in: [] }
      this.#connection = connection
      connections.push(connection)
      this.on('open', () => { connection.openedAt = Date.now() })
      this.on('message', (data) => { connection.in.push(parse(data)) })
      this.on('close', (code) => { connection.closed = { code, at: Date.now() } })
    }

    override send (data: any, ...rest: any[]): void {
      this.#connection.out.push(parse(data))
      ;(super.send as (...args: any[]) => void)(data, ...rest)
    }
  }
}
