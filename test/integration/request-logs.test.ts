import t from 'tap'
import { backends } from '../helpers/backends.js'
import { captureLogs } from '../helpers/log-capture.js'
import { startTestServer } from '../helpers/server.js'

// LOG_LEVEL=debug logs each REST request once, when answered: method, route pattern, status,
// time and request id, never a credential. Any other level pays nothing and logs nothing.
const [embedded] = backends().run
const DEBUG = 20

t.test('at debug: one line per request, with its route pattern and no credential', async (t) => {
  const logs = captureLogs('debug')
  const { api } = await startTestServer(t, embedded!, { logger: logs.logger })
  const password = 'correct-horse-battery'
  const username = `logs_${process.pid}`
  t.equal((await api.request('POST', '/auth/register', { json: { username, password } })).status, 201)
  const login = await api.request('POST', '/auth/login', { json: { username, password } })
  const { token, refreshToken } = login.body as { token: string, refreshToken: string }
  const from = logs.lines.length

  const requests: Array<[string, string, number, string]> = [
    ['GET', '/rooms', 200, '/rooms'],
    ['GET', '/rooms/general/messages?limit=5', 200, '/rooms/:id/messages'],
    ['GET', '/rooms/nowhere', 404, '/rooms/:id'],
    ['GET', '/ready', 200, '/ready']
  ]
  for (const [method, path, status] of requests) {
    t.equal((await api.request(method, path, { token })).status, status, `${method} ${path}`)
  }
  t.equal((await api.request('POST', '/auth/refresh', { json: { refreshToken } })).status, 200)
  const secret = 'query-token-secret'
  t.equal((await api.request('GET', `/nope?token=${secret}&x=1`)).status, 404)
  t.equal((await api.request('GET', `/ws?token=${secret}`)).status, 400, 'a plain GET of the socket endpoint')

  const lines = logs.lines.slice(from).filter((line) => line.msg === 'request completed')
  t.equal(lines.length, requests.length + 3, 'one line per request')
  for (const [i, [method, , status, route]] of requests.entries()) {
    t.match(lines[i], { level: DEBUG, method, route, status, ms: Number, reqId: String }, `${method} ${route}`)
    t.notOk('url' in (lines[i] ?? {}), 'the pattern, not the URL with its ids')
  }
  t.match(lines[requests.length], { method: 'POST', route: '/auth/refresh', status: 200 })
  t.match(lines[requests.length + 1], { method: 'GET', url: '/nope?token=[Redacted]&x=1', status: 404 }, 'no route: the URL, its token redacted')
  t.match(lines[requests.length + 2], { method: 'GET', route: '/ws', status: 400 })
  t.equal(new Set(lines.map((line) => line.reqId)).size, lines.length, 'each with its own request id')

  const text = logs.text()
  for (const [what, value] of [['access token', token], ['refresh token', refreshToken], ['password', password], ['token in a query', secret]] as const) {
    t.notOk(text.includes(value), `the ${what} appears nowhere in the log`)
  }
  t.notMatch(text, /authorization|bearer/i, 'no Authorization header')
})

t.test('at info: no request lines', async (t) => {
  const logs = captureLogs('info')
  const { api } = await startTestServer(t, embedded!, { logger: logs.logger })
  const user = await api.user('quiet')
  for (let i = 0; i < 5; i++) t.equal((await api.request('GET', '/rooms', { token: user.token })).status, 200)
  t.equal((await api.request('GET', '/nope')).status, 404)
  t.ok(logs.lines.length > 0, 'the server does log at info')
  t.strictSame(logs.lines.filter((line) => line.msg === 'request completed' || 'route' in line || 'reqId' in line), [], 'nothing per request')
})
