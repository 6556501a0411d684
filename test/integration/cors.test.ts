import t from 'tap'
import { backends } from '../helpers/backends.js'
import { startTestServer } from '../helpers/server.js'

// CORS is about the HTTP layer, not the database: the embedded backend is enough.
const [embedded] = backends().run

t.test('any origin by default, preflight included', async (t) => {
  const { api } = await startTestServer(t, embedded!)
  const preflight = await api.request('OPTIONS', '/rooms', {
    headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' }
  })
  t.equal(preflight.status, 204)
  t.equal(preflight.headers.get('access-control-allow-origin'), '*')
  t.match(preflight.headers.get('access-control-allow-headers') ?? '', /authorization/)
  const simple = await api.request('GET', '/health', { headers: { origin: 'http://localhost:5173' } })
  t.equal(simple.headers.get('access-control-allow-origin'), '*')
})

t.test('a list admits only its origins; empty turns CORS off', async (t) => {
  const listed = await startTestServer(t, embedded!, { env: { CORS_ORIGINS: 'https://chat.example.com, http://localhost:5173' } })
  const allowed = await listed.api.request('GET', '/health', { headers: { origin: 'https://chat.example.com' } })
  t.equal(allowed.headers.get('access-control-allow-origin'), 'https://chat.example.com')
  const refused = await listed.api.request('GET', '/health', { headers: { origin: 'https://evil.example' } })
  t.equal(refused.headers.get('access-control-allow-origin'), null)

  const off = await startTestServer(t, embedded!, { env: { CORS_ORIGINS: '' } })
  const none = await off.api.request('GET', '/health', { headers: { origin: 'https://chat.example.com' } })
  t.equal(none.status, 200)
  t.equal(none.headers.get('access-control-allow-origin'), null)
})
