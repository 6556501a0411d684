import { Agent, request, type IncomingHttpHeaders } from 'node:http'
import { connect, type Socket } from 'node:net'
import t from 'tap'
import { backends } from '../helpers/backends.js'
import { startTestServer } from '../helpers/server.js'

interface RawResponse {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

interface Exchange {
  /** The parsed response, once complete. */
  readonly response: Promise<RawResponse>
  /** Resolves when the connection is closed (by either side). */
  readonly closed: Promise<void>
  write (data: string | Buffer): void
  destroy (): void
}

/**
 * Talks HTTP/1.1 over a plain socket, for what node:http will not send (odd methods, a body cut
 * short, a chunked body written by hand) or hides (a body on HEAD). Parses one response; with
 * `head` the response is parsed at close and its body is every byte after the headers.
 */
function rawExchange (port: number, head: string, options: { head?: boolean } = {}): Exchange {
  const socket = connect(port, '127.0.0.1')
  let data = Buffer.alloc(0)
  let done = false
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  const response = new Promise<RawResponse>((resolve, reject) => {
    const tryParse = (atClose: boolean): void => {
      const end = data.indexOf('\r\n\r\n')
      if (end === -1) {
        if (atClose) reject(new Error(`connection closed before a response: ${JSON.stringify(data.toString())}`))
        return
      }
      const lines = data.subarray(0, end).toString().split('\r\n')
      const status = Number(lines[0]?.split(' ')[1])
      const headers: IncomingHttpHeaders = {}
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':')
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      const body = data.subarray(end + 4)
      // Without a length to go by, everything up to the close counts.
      if (options.head === true && !atClose) return
      const length = options.head === true ? body.length : Number(headers['content-length'] ?? 0)
      if (body.length < length && !atClose) return
      done = true
      resolve({ status, headers, body: body.subarray(0, length).toString() })
    }
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk])
      if (!done) tryParse(false)
    })
    socket.on('close', () => { if (!done) tryParse(true) })
    // A reset after the answer (the server closing on an upload it refused) is not a failure here.
    socket.on('error', (error) => { if (!done) reject(error) })
  })
  socket.write(head)
  return {
    response,
    closed,
    write: (chunk) => { socket.write(chunk) },
    destroy: () => { socket.destroy() }
  }
}

/** Whether the connection closes within `ms`. */
async function closesWithin (exchange: Exchange, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms) })
  const result = await Promise.race([exchange.closed.then(() => true), timeout])
  clearTimeout(timer)
  return result
}

interface NodeResponse { status: number, headers: IncomingHttpHeaders, body: string, socket: Socket }

/** One request through node:http (which owns keep-alive and framing), body read in full. */
function nodeRequest (port: number, options: { method?: string, path: string, headers?: Record<string, string>, body?: string, agent?: Agent }): Promise<NodeResponse> {
  return new Promise((resolve, reject) => {
    // A fresh connection unless an agent is given, so one test's connection state cannot leak into the next.
    const req = request({ host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path, headers: options.headers, agent: options.agent ?? false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, socket: req.socket as Socket }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')))
    req.end(options.body)
  })
}

const LIMIT = 64 * 1024
const embedded = backends().run.find((backend) => backend.name === 'embedded')
if (embedded === undefined) throw new Error('the embedded backend is always available')

t.test('the uWS → Fastify bridge', async (t) => {
  const { server, api } = await startTestServer(t, embedded)
  const port = server.port

  t.test('an unknown path is a 404 JSON error', async (t) => {
    const res = await api.request('GET', '/no/such/path?x=1')
    t.equal(res.status, 404)
    t.match(res.headers.get('content-type'), /^application\/json/)
    t.equal(res.body.error, 'not_found')
    t.type(res.body.message, 'string')
  })

  t.test('Fastify\'s response headers come through', async (t) => {
    const res = await nodeRequest(port, { path: '/health' })
    t.equal(res.status, 200)
    t.match(res.headers['content-type'], /^application\/json/)
    t.equal(res.headers['content-length'], String(Buffer.byteLength(res.body)))
    t.same(JSON.parse(res.body), { status: 'ok' })
  })

  t.test('HEAD /health: 200, headers, no body', async (t) => {
    const get = await nodeRequest(port, { path: '/health' })
    // node:http would hide a stray body on HEAD, so read the bytes off the wire for a while.
    const head = rawExchange(port, 'HEAD /health HTTP/1.1\r\nHost: test\r\n\r\n', { head: true })
    await new Promise((resolve) => setTimeout(resolve, 200))
    head.destroy()
    const res = await head.response
    t.equal(res.status, 200)
    t.equal(res.headers['content-length'], String(Buffer.byteLength(get.body)), 'the length GET would send')
    t.match(res.headers['content-type'], /^application\/json/)
    t.equal(res.body, '', 'no body')
    const viaNode = await nodeRequest(port, { method: 'HEAD', path: '/health' })
    t.equal(viaNode.status, 200)
    t.equal(viaNode.body, '')
  })

  // Keep-alive clients (node's default agent, browsers, health checkers) send their next request on
  // the same connection; it must be answered, not reset.
  t.test('a keep-alive connection stays usable after a HEAD', async (t) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    t.teardown(() => agent.destroy())
    const head = await nodeRequest(port, { method: 'HEAD', path: '/health', agent })
    t.equal(head.status, 200)
    const next = await nodeRequest(port, { path: '/health', agent }).catch((error: Error) => error)
    t.notOk(next instanceof Error, `the next request is answered (${next instanceof Error ? next.message : 'ok'})`)
    if (!(next instanceof Error)) {
      t.equal(next.status, 200)
      t.equal(next.socket, head.socket, 'on the same connection')
    }
  })

  t.test('request headers and the query string reach Fastify', async (t) => {
    const user = await api.user('bridge')
    t.equal((await api.request('GET', '/rooms')).status, 401, 'no token, no rooms')
    t.equal((await api.request('GET', '/rooms', { token: user.token })).status, 200, 'the Authorization header is passed on')
    const bad = await api.request('GET', '/rooms/general/messages?limit=0', { token: user.token })
    t.equal(bad.status, 400, 'limit=0 is seen and refused')
    const ok = await api.request('GET', '/rooms/general/messages?limit=1', { token: user.token })
    t.equal(ok.status, 200)
    t.same(ok.body, { messages: [], hasMore: false })
  })

  t.test('a 204 goes out without a body', async (t) => {
    const user = await api.user('nobody')
    const res = await nodeRequest(port, {
      method: 'POST',
      path: '/rooms/general/members',
      headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ userId: user.id })
    })
    t.equal(res.status, 204)
    t.equal(res.body, '')
    t.equal((await api.request('GET', '/health')).status, 200, 'the connection state stayed sane')
  })

  t.test('a declared body over 64 KiB is refused with 413 before it is read', async (t) => {
    // Only the headers and a few bytes: the server must answer without waiting for the rest.
    const exchange = rawExchange(port, `POST /auth/register HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: ${LIMIT + 1}\r\n\r\n{"username":`)
    const res = await exchange.response
    t.equal(res.status, 413)
    t.match(res.headers['content-type'], /^application\/json/)
    t.equal(JSON.parse(res.body).error, 'payload_too_large')
    t.ok(await closesWithin(exchange, 2_000), 'the connection is closed, the rest of the upload is not awaited')
    exchange.destroy()
  })

  t.test('a declared body of exactly 64 KiB is read (not 413)', async (t) => {
    const prefix = '{"username":"exactly_64k","password":"'
    const suffix = '"}'
    const body = prefix + 'p'.repeat(LIMIT - prefix.length - suffix.length) + suffix
    t.equal(Buffer.byteLength(body), LIMIT)
    const res = await api.request('POST', '/auth/register', { raw: body, contentType: 'application/json' })
    t.equal(res.status, 400, 'parsed and validated: the password is too long')
    t.equal(res.body.error, 'bad_request')
  })

  t.test('a chunked body over 64 KiB is refused with 413', async (t) => {
    const exchange = rawExchange(port, 'POST /auth/register HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n')
    // Several chunks, one byte past the limit in all, and no final chunk: the server has to count.
    const piece = 'x'.repeat(16 * 1024)
    for (let i = 0; i < 4; i++) exchange.write(`${piece.length.toString(16)}\r\n${piece}\r\n`)
    exchange.write('1\r\nx\r\n')
    const res = await exchange.response
    t.equal(res.status, 413)
    t.equal(JSON.parse(res.body).error, 'payload_too_large')
    exchange.destroy()
    t.equal((await api.request('GET', '/health')).status, 200, 'the server is fine afterwards')
  })

  t.test('a chunked JSON body under the limit is accepted', async (t) => {
    const body = JSON.stringify({ username: 'chunked_user', password: 'chunked-password' })
    const exchange = rawExchange(port, 'POST /auth/register HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n')
    const half = Math.floor(body.length / 2)
    exchange.write(`${half.toString(16)}\r\n${body.slice(0, half)}\r\n`)
    await new Promise((resolve) => setTimeout(resolve, 50))
    exchange.write(`${(body.length - half).toString(16)}\r\n${body.slice(half)}\r\n0\r\n\r\n`)
    const res = await exchange.response
    exchange.destroy()
    t.equal(res.status, 201, res.body)
    t.equal(JSON.parse(res.body).username, 'chunked_user')
    const login = await api.request('POST', '/auth/login', { json: { username: 'chunked_user', password: 'chunked-password' } })
    t.equal(login.status, 200, 'the whole body was stored, not a part')
  })

  t.test('an empty body (content-length: 0) gets an answer', async (t) => {
    const res = await nodeRequest(port, { method: 'POST', path: '/auth/register', headers: { 'content-type': 'application/json', 'content-length': '0' } })
    t.equal(res.status, 400)
    t.equal(JSON.parse(res.body).error, 'bad_request')
  })

  t.test('several requests on one keep-alive connection', async (t) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    t.teardown(() => agent.destroy())
    const results: NodeResponse[] = []
    for (let i = 0; i < 5; i++) results.push(await nodeRequest(port, { path: '/health', agent }))
    // Issued at once but queued by the agent behind its one socket (node:http does not pipeline).
    results.push(...await Promise.all([
      nodeRequest(port, { path: '/no-such', agent }),
      nodeRequest(port, { method: 'POST', path: '/auth/login', agent, headers: { 'content-type': 'application/json' }, body: '{"username":"nobody_here","password":"whatever1"}' }),
      nodeRequest(port, { path: '/health', agent })
    ]))
    t.same(results.map((r) => r.status), [200, 200, 200, 200, 200, 404, 401, 200])
    // req.reusedSocket is false for requests the agent queued, so compare the sockets themselves.
    t.equal(new Set(results.map((r) => r.socket)).size, 1, 'one connection for all')
  })

  t.test('unusual methods get 404 JSON and the server stays up', async (t) => {
    const propfind = await nodeRequest(port, { method: 'PROPFIND', path: '/health' })
    t.equal(propfind.status, 404)
    t.equal(JSON.parse(propfind.body).error, 'not_found')
    t.match(propfind.headers['content-type'], /^application\/json/)
    for (const method of ['BREW', 'get', 'M-SEARCH']) {
      const exchange = rawExchange(port, `${method} /health HTTP/1.1\r\nHost: test\r\n\r\n`)
      const res = await exchange.response
      exchange.destroy()
      t.equal(res.status, 404, method)
      t.equal(JSON.parse(res.body).error, 'not_found', method)
    }
    t.equal((await api.request('GET', '/health')).status, 200)
  })

  t.test('100 concurrent requests all succeed', async (t) => {
    const agent = new Agent({ keepAlive: false, maxSockets: 100 })
    t.teardown(() => agent.destroy())
    const statuses = await Promise.all(Array.from({ length: 100 }, async () => (await nodeRequest(port, { path: '/health', agent })).status))
    t.equal(statuses.filter((s) => s === 200).length, 100)
  })

  t.test('a client that aborts mid-body does not hurt the server', async (t) => {
    for (const head of [
      `POST /auth/register HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"username":"half`,
      'POST /auth/register HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{"username":"hal'
    ]) {
      const exchange = rawExchange(port, head)
      exchange.response.catch(() => {})
      await new Promise((resolve) => setTimeout(resolve, 100))
      exchange.destroy()
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
    t.equal((await api.request('GET', '/health')).status, 200, 'the next request is served')
  })

  // Last: it stops the server. Uploads aborted above must not count as requests in flight, or every
  // shutdown after such a client waits out the whole drain timeout.
  t.test('shutdown is not held up by aborted uploads', async (t) => {
    // The drain timer is unref'd: without a timer of our own the test process could run out of
    // work and exit while close() still waits.
    const keepAlive = setInterval(() => {}, 1_000)
    const start = performance.now()
    const closing = server.close()
    t.teardown(async () => {
      await closing
      clearInterval(keepAlive)
    })
    let timer: NodeJS.Timeout | undefined
    const inTime = await Promise.race([
      closing.then(() => true),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), 5_000) })
    ])
    clearTimeout(timer)
    t.ok(inTime, `server.close() finished within 5 s (${(performance.now() - start).toFixed(0)} ms)`)
  })
})
