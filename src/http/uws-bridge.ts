import { STATUS_CODES } from 'node:http'
import type { HttpRequest, HttpResponse } from 'uWebSockets.js'

/** A fully read HTTP request, copied out of uWS so it outlives the handler. */
export interface BridgedRequest {
  readonly method: string
  /** Path and query, as received. */
  readonly url: string
  readonly headers: Record<string, string>
  readonly body: Buffer | undefined
  readonly remoteAddress: string
}

export interface BridgedResponse {
  readonly statusCode: number
  readonly headers: Readonly<Record<string, string | string[] | number | undefined>>
  /** A string when the app sent one string (JSON, mostly): uWS encodes it as UTF-8 itself, without a copy in between. */
  readonly body: Buffer | string
}

/** Serves one request; the REST app behind it (Fastify) never sees uWS. */
export type HttpDispatch = (request: BridgedRequest) => Promise<BridgedResponse>

export interface HttpBridge {
  /** The uWS handler for every non-WebSocket route. */
  readonly handle: (res: HttpResponse, req: HttpRequest) => void
  /** Resolves when no request is being served. */
  idle (): Promise<void>
}

export interface HttpBridgeOptions {
  readonly dispatch: HttpDispatch
  /** Bodies above this many bytes get 413 without being read to the end. */
  readonly bodyLimit: number
  readonly onError: (error: unknown) => void
}

/** Headers uWS writes itself, or that describe the connection rather than the response. */
const SKIPPED_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'date', 'keep-alive'])

const TOO_LARGE = JSON.stringify({ error: 'payload_too_large', message: 'request body is too large' })
const INTERNAL = JSON.stringify({ error: 'internal', message: 'internal error' })

export function createHttpBridge (options: HttpBridgeOptions): HttpBridge {
  let inFlight = 0
  let waiters: Array<() => void> = []

  const finished = (): void => {
    if (--inFlight > 0) return
    for (const wake of waiters) wake()
    waiters = []
  }

  const handle = (res: HttpResponse, req: HttpRequest): void => {
    // uWS invalidates `req` when this function returns: copy everything now.
    const method = req.getCaseSensitiveMethod()
    const query = req.getQuery()
    const url = query === '' ? req.getUrl() : `${req.getUrl()}?${query}`
    const headers: Record<string, string> = {}
    req.forEach((key, value) => {
      const previous = headers[key]
      headers[key] = previous === undefined ? value : `${previous}, ${value}`
    })
    const remoteAddress = Buffer.from(res.getRemoteAddressAsText()).toString()
    const state = { aborted: false }

    const declared = headers['content-length'] === undefined ? undefined : Number(headers['content-length'])
    if (declared !== undefined && declared > options.bodyLimit) {
      writeJson(res, 413, TOO_LARGE, true)
      return
    }
    // In flight from here until answered, refused, or abandoned by the client before dispatch.
    inFlight++
    let dispatched = false
    let settled = false
    const settle = (): void => {
      if (settled) return
      settled = true
      finished()
    }
    res.onAborted(() => {
      state.aborted = true
      // Once dispatched, Fastify may still be working for this request: it settles when that ends.
      if (!dispatched) settle()
    })
    const serve = (body: Buffer | undefined): void => {
      dispatched = true
      options.dispatch({ method, url, headers, body, remoteAddress })
        .then((response) => { if (!state.aborted) res.cork(() => { writeResponse(res, method, response) }) }, (error: unknown) => {
          options.onError(error)
          if (!state.aborted) res.cork(() => { writeJson(res, 500, INTERNAL, false) })
        })
        // A failure while writing is logged; it must never become an unhandled rejection.
        .catch(options.onError)
        .finally(settle)
    }
    if (declared === undefined && headers['transfer-encoding'] === undefined) {
      serve(undefined)
      return
    }
    readBody(res, options.bodyLimit, state, (body) => {
      if (body !== null) {
        serve(body)
        return
      }
      settle()
      if (!state.aborted) res.cork(() => { writeJson(res, 413, TOO_LARGE, true) })
    })
  }

  return {
    handle,
    async idle () {
      if (inFlight === 0) return
      await new Promise<void>((resolve) => waiters.push(resolve))
    }
  }
}

/** Collects the body; hands `null` once it grows past `limit` (the rest is not buffered). */
function readBody (res: HttpResponse, limit: number, state: { aborted: boolean }, done: (body: Buffer | null) => void): void {
  const chunks: Buffer[] = []
  let size = 0
  let overflowed = false
  res.onData((chunk, isLast) => {
    if (overflowed || state.aborted) return
    size += chunk.byteLength
    if (size > limit) {
      overflowed = true
      done(null)
      return
    }
    // The ArrayBuffer is neutered when this callback returns, so it is copied.
    chunks.push(Buffer.from(new Uint8Array(chunk)))
    if (isLast) done(Buffer.concat(chunks, size))
  })
}

function writeResponse (res: HttpResponse, method: string, response: BridgedResponse): void {
  res.writeStatus(statusLine(response.statusCode))
  for (const [key, value] of Object.entries(response.headers)) {
    if (value === undefined || SKIPPED_HEADERS.has(key)) continue
    if (Array.isArray(value)) for (const item of value) res.writeHeader(key, item)
    else res.writeHeader(key, String(value))
  }
  if (method === 'HEAD') {
    // endWithoutBody(n) with n > 0 leaves uWS waiting for a body and breaks keep-alive; state the length as a header instead.
    res.writeHeader('content-length', String(response.headers['content-length'] ?? 0)).endWithoutBody()
  } else if (response.statusCode === 204 || response.statusCode === 304) {
    res.endWithoutBody(0)
  } else {
    res.end(response.body)
  }
}

function writeJson (res: HttpResponse, status: number, body: string, closeConnection: boolean): void {
  res.writeStatus(statusLine(status)).writeHeader('content-type', 'application/json; charset=utf-8').end(body, closeConnection)
}

function statusLine (status: number): string {
  return `${status} ${STATUS_CODES[status] ?? ''}`
}
