import t from 'tap'
import { backends } from '../helpers/backends.js'
import { startTestServer } from '../helpers/server.js'

// Login limits count per client address; behind a proxy that address must come from X-Forwarded-For,
// or one client's failures would lock out everyone behind the same proxy.
const [embedded] = backends().run

async function failTwiceThenTry (api: Awaited<ReturnType<typeof startTestServer>>['api'], username: string, from: string, next: string): Promise<number> {
  for (let i = 0; i < 2; i++) {
    const res = await api.request('POST', '/auth/login', { json: { username, password: 'wrong-password' }, headers: { 'x-forwarded-for': from } })
    if (res.status !== 401) throw new Error(`expected 401, got ${res.status}`)
  }
  return (await api.request('POST', '/auth/login', { json: { username, password: 'correct-horse-battery' }, headers: { 'x-forwarded-for': next } })).status
}

t.test('TRUST_PROXY: the forwarded address is the client, so other clients are not locked out', async (t) => {
  const { api } = await startTestServer(t, embedded!, { env: { TRUST_PROXY: '127.0.0.1', LOGIN_MAX_FAILURES: '2' } })
  const user = await api.user('proxied')
  t.equal(await failTwiceThenTry(api, user.username, '203.0.113.7', '198.51.100.9'), 200, 'another client behind the proxy logs in')
  const locked = await api.request('POST', '/auth/login', { json: { username: user.username, password: 'correct-horse-battery' }, headers: { 'x-forwarded-for': '203.0.113.7' } })
  t.equal(locked.status, 429, 'the failing client itself is limited')
})

t.test('without TRUST_PROXY the header is ignored: a client cannot dodge the limit by forging it', async (t) => {
  const { api } = await startTestServer(t, embedded!, { env: { LOGIN_MAX_FAILURES: '2' } })
  const user = await api.user('direct')
  t.equal(await failTwiceThenTry(api, user.username, '203.0.113.7', '198.51.100.9'), 429)
})
