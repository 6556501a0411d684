import { Agent, request as httpRequest } from 'node:http'
import { connect, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { createDatabase } from '../../db/create-db.js'
import { assertError } from '../helpers/assertions.js'
import { backends } from '../helpers/backends.js'
import { delay, waitUntil } from '../helpers/chat.js'
import type { ApiResponse } from '../helpers/http.js'
import { startTestServer } from '../helpers/server.js'

// A node that is stopping says so on /ready at once, to requests on connections that stay open
// (a balancer's keep-alive polls) as well as to app.inject; /health stays about the process.
const [embedded] = backends().run

/** Requests over one kept-alive connection, opened before the server stops accepting new ones. */
function keptAlive (t: Test, baseUrl: string): (path: string, token?: string) => Promise<ApiResponse> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  return async (path, token) => await new Promise((resolve, reject) => {
    const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` }
    httpRequest(`${baseUrl}${path}`, { agent, headers }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { text += chunk })
      res.on('end', () => {
        const headers = new Headers()
        for (const [name, value] of Object.entries(res.headers)) if (typeof value === 'string') headers.set(name, value)
        resolve({ status: res.statusCode ?? 0, headers, body: JSON.parse(text), text })
      })
    }).on('error', reject).end()
  })
}

/** A request whose body never finishes arriving: in flight, so close() waits for it (up to its drain timeout). */
async function stalledRequest (t: Test, port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  socket.on('error', () => {})
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.write('POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"user')
  return socket
}

function assertDraining (t: Test, res: ApiResponse, label: string): void {
  t.equal(res.status, 503, `${label}: 503`)
  t.equal(res.body.error, 'unavailable', `${label}: the contract's error code`)
  t.equal(res.body.status, 'unavailable', `${label}: status`)
  t.match(res.body.message, /draining/, `${label}: the message names it`)
  t.same(res.body.checks.draining, { ok: false }, `${label}: draining check`)
  t.equal(res.body.checks.database.ok, true, `${label}: the database itself still answers`)
}

t.test('GET /ready: 200 with a check per dependency; 503 once draining, through app.inject too', async (t) => {
  const { api, server } = await startTestServer(t, embedded!)
  const res = await api.request('GET', '/ready')
  t.equal(res.status, 200)
  t.equal(res.body.status, 'ready')
  t.strictSame(Object.keys(res.body).sort(), ['checks', 'status'])
  t.strictSame(Object.keys(res.body.checks).sort(), ['bus', 'database', 'draining'], 'no redis check without REDIS_URL')
  t.match(res.body.checks, { database: { ok: true, ms: Number }, bus: { ok: true }, draining: { ok: true } })
  t.strictSame((await api.request('GET', '/health')).body, { status: 'ok' })

  // Draining without server.ts around the app (app.inject) is seen the same way.
  server.app.drain.start()
  const draining = await server.app.inject({ method: 'GET', url: '/ready' })
  assertDraining(t, { status: draining.statusCode, headers: new Headers(), body: draining.json(), text: draining.body }, 'inject')
})

t.test('draining: /ready answers 503 from the moment close() starts, while a request in flight holds it open', async (t) => {
  const { api, baseUrl, server } = await startTestServer(t, embedded!)
  const alice = await api.user('drain')
  const get = keptAlive(t, baseUrl)
  t.equal((await get('/ready')).status, 200, 'ready before')
  const stalled = await stalledRequest(t, server.port)
  await delay(100)

  const closed = server.close()
  await delay(100)
  assertDraining(t, await get('/ready'), 'while requests in flight finish')
  t.equal((await get('/health')).status, 200, '/health: the process is fine')
  t.equal((await get('/rooms', alice.token)).status, 200, 'requests on open connections are still served until the sockets close')

  stalled.destroy()
  await closed
})

t.test('draining: once the app itself closes, /ready still says why and every other route answers 503 unavailable', async (t) => {
  // The database's close waits for the test: the app is closing (sockets closed, hooks run) but still serves open connections.
  let closeCalled = false
  let release = (): void => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  const { api, baseUrl, server } = await startTestServer(t, embedded!, {
    openDatabase: async (options) => {
      const real = await createDatabase(options)
      return {
        ...real,
        async close () {
          closeCalled = true
          await held
          await real.close()
        }
      }
    }
  })
  t.teardown(release)
  const alice = await api.user('closing')
  const get = keptAlive(t, baseUrl)
  t.equal((await get('/ready')).status, 200, 'ready before')

  const closed = server.close()
  await waitUntil(() => closeCalled, 10_000, 'the app to reach the database\'s close')
  assertDraining(t, await get('/ready'), 'while the app closes')
  t.equal((await get('/health')).status, 200, '/health still answers')
  const refused = await get('/rooms', alice.token)
  assertError(t, refused, 503, 'unavailable', 'GET /rooms while the app closes')
  t.equal(refused.headers.get('retry-after'), '1')
  release()
  await closed
})
