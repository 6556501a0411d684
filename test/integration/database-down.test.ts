import t from 'tap'
import { backends } from '../helpers/backends.js'
import { startTestServer } from '../helpers/server.js'
import { proxyUrl } from '../helpers/tcp-proxy.js'

// The embedded database lives inside the server process and cannot go away on its own; a real
// Postgres can, so this runs against the machine's Postgres through a proxy the test can cut.
const postgres = backends().run.find((b) => b.name === 'postgres')

t.test('REST answers 503 unavailable while Postgres is unreachable, and recovers', { skip: postgres === undefined ? 'postgres: TEST_DATABASE_URL is not set' : false }, async (t) => {
  const { url, drop } = await postgres!.provision()
  t.teardown(drop)
  const { proxy, url: proxied } = await proxyUrl(url!, 5432)
  t.teardown(async () => await proxy.close())

  const { api } = await startTestServer(t, { name: 'postgres', provision: async () => ({ url: proxied, drop: async () => {} }) })
  const alice = await api.user('down')
  t.equal((await api.request('GET', '/rooms', { token: alice.token })).status, 200)

  proxy.cut()
  for (const path of ['/rooms', '/rooms/general', '/rooms/general/messages']) {
    const res = await api.request('GET', path, { token: alice.token })
    t.equal(res.status, 503, `${path} while down`)
    t.same(Object.keys(res.body).sort(), ['error', 'message'])
    t.equal(res.body.error, 'unavailable')
    t.equal(res.headers.get('retry-after'), '1')
  }
  const login = await api.request('POST', '/auth/login', { json: { username: alice.username, password: 'correct-horse-battery' } })
  t.equal(login.status, 503, 'login while down')
  t.equal((await api.request('GET', '/ready')).status, 503, '/ready while down')
  t.equal((await api.request('GET', '/health')).status, 200, '/health: the process is still up')

  proxy.restore()
  t.equal((await api.request('GET', '/rooms', { token: alice.token })).status, 200, 'recovered')
  t.equal((await api.request('GET', '/ready')).status, 200, '/ready recovered')
})
