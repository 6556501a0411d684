import { EventEmitter } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import type { BridgedRequest, BridgedResponse, HttpDispatch } from './uws-bridge.js'

/** A Node `request` listener, such as `fastify.routing`. */
export type NodeRequestListener = (req: IncomingMessage, res: ServerResponse) => void

/**
 * Serves bridged requests with a Node-style request listener, through the small part of
 * IncomingMessage/ServerResponse that such a listener uses, instead of a full simulated
 * connection per request (what `inject` builds). The body is already read and bounded.
 */
export function createNodeDispatch (listener: NodeRequestListener): HttpDispatch {
  return async (request) => await new Promise<BridgedResponse>((resolve, reject) => {
    const req = new BridgedIncomingMessage(request)
    const res = new CollectingResponse(resolve, reject)
    try {
      listener(req as unknown as IncomingMessage, res as unknown as ServerResponse)
    } catch (error) {
      reject(error instanceof Error ? error : new Error(String(error)))
    }
  })
}

/** Stands in for the TCP socket: only its address and listeners are ever used. */
class BridgedSocket extends EventEmitter {
  readonly remoteAddress: string
  readonly encrypted = false
  constructor (remoteAddress: string) {
    super()
    this.remoteAddress = remoteAddress
  }

  setTimeout (): this { return this }
  destroy (): this { return this }
}

class BridgedIncomingMessage extends Readable {
  readonly method: string
  url: string
  readonly headers: Record<string, string>
  readonly httpVersion = '1.1'
  readonly httpVersionMajor = 1
  readonly httpVersionMinor = 1
  readonly socket: BridgedSocket
  readonly connection: BridgedSocket
  readonly aborted = false
  readonly complete = true
  #body: Buffer | undefined

  constructor (request: BridgedRequest) {
    super()
    this.method = request.method
    this.url = request.url
    this.headers = request.headers
    this.socket = new BridgedSocket(request.remoteAddress)
    this.connection = this.socket
    this.#body = request.body
  }

  override _read (): void {
    if (this.#body !== undefined && this.#body.length > 0) this.push(this.#body)
    this.#body = undefined
    this.push(null)
  }
}

type HeaderValue = string | number | readonly string[]

/** Collects status, headers and body, and hands them over when the listener ends the response. */
class CollectingResponse extends EventEmitter {
  statusCode = 200
  statusMessage = ''
  headersSent = false
  writableEnded = false
  writableFinished = false
  destroyed = false
  readonly #headers = new Map<string, HeaderValue>()
  readonly #chunks: Array<Buffer | string> = []
  readonly #resolve: (response: BridgedResponse) => void
  readonly #reject: (error: Error) => void

  constructor (resolve: (response: BridgedResponse) => void, reject: (error: Error) => void) {
    super()
    this.#resolve = resolve
    this.#reject = reject
  }

  get finished (): boolean { return this.writableEnded }

  setHeader (name: string, value: HeaderValue): this {
    this.#headers.set(name.toLowerCase(), value)
    return this
  }

  getHeader (name: string): HeaderValue | undefined { return this.#headers.get(name.toLowerCase()) }
  hasHeader (name: string): boolean { return this.#headers.has(name.toLowerCase()) }
  removeHeader (name: string): void { this.#headers.delete(name.toLowerCase()) }
  getHeaderNames (): string[] { return [...this.#headers.keys()] }
  getHeaders (): Record<string, HeaderValue> { return Object.fromEntries(this.#headers) }
  flushHeaders (): void { this.headersSent = true }

  writeHead (statusCode: number, reasonOrHeaders?: string | Record<string, HeaderValue>, headers?: Record<string, HeaderValue>): this {
    this.statusCode = statusCode
    const fields = typeof reasonOrHeaders === 'object' ? reasonOrHeaders : headers
    if (typeof reasonOrHeaders === 'string') this.statusMessage = reasonOrHeaders
    for (const [name, value] of Object.entries(fields ?? {})) this.setHeader(name, value)
    this.headersSent = true
    return this
  }

  write (chunk: string | Uint8Array, encoding?: BufferEncoding | (() => void), callback?: () => void): boolean {
    this.headersSent = true
    if (typeof chunk !== 'string') this.#chunks.push(Buffer.from(chunk))
    else this.#chunks.push(typeof encoding === 'string' && encoding !== 'utf8' && encoding !== 'utf-8' ? Buffer.from(chunk, encoding) : chunk)
    const done = typeof encoding === 'function' ? encoding : callback
    if (done !== undefined) process.nextTick(done)
    return true
  }

  end (chunk?: string | Uint8Array | null | (() => void), encoding?: BufferEncoding | (() => void), callback?: () => void): this {
    if (this.writableEnded) return this
    if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') this.write(chunk, typeof encoding === 'string' ? encoding : undefined)
    this.writableEnded = true
    this.headersSent = true
    const headers: Record<string, string | string[] | number> = {}
    for (const [name, value] of this.#headers) headers[name] = typeof value === 'object' ? [...value] : value
    // One chunk (what Fastify writes) is handed over as it is; several are joined as bytes.
    const [only] = this.#chunks
    const body = this.#chunks.length === 1 && only !== undefined ? only : Buffer.concat(this.#chunks.map((c) => typeof c === 'string' ? Buffer.from(c) : c))
    this.#resolve({ statusCode: this.statusCode, headers, body })
    const done = typeof chunk === 'function' ? chunk : typeof encoding === 'function' ? encoding : callback
    // 'finish' then 'close', after the caller's stack unwinds, as a real response does; onResponse hooks run on them.
    process.nextTick(() => {
      this.writableFinished = true
      done?.()
      this.emit('finish')
      this.emit('close')
    })
    return this
  }

  destroy (error?: Error): this {
    if (this.destroyed) return this
    this.destroyed = true
    if (!this.writableEnded) this.#reject(error ?? new Error('response destroyed before it ended'))
    process.nextTick(() => this.emit('close'))
    return this
  }
}
