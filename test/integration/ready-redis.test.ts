import t from 'tap'
import { assertError } from '../helpers/assertions.js'
import { backends } from '../helpers/backends.js'
import { startTestServer } from '../helpers/server.js'
import { freePort } from '../helpers/ports.js'
import { proxyUrl } from '../helpers/tcp-proxy.js'

// /ready includes Redis when REDIS_URL is set (API.md); the database side is covered in health.test.ts.
const [embedded] = backends().run

async function readyWithin (get: () => Promise<number>, want: number, ms: number): Promise<number> {
  const deadline = Date.now() + ms
  let status = await get()
  while (status !== want && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    status = await get()
  }
  return status
}

t.test('an unreachable Redis makes /ready 503 but does not stop the server', async (t) => {
  const { api } = await startTestServer(t, embedded!, { env: { REDIS_URL: `redis://127.0.0.1:${await freePort()}` } })
  const ready = await api.request('GET', '/ready')
  assertError(t, ready, 503, 'unavailable', '/ready')
  t.match(ready.body.message, /redis/)
  t.equal((await api.request('GET', '/health')).status, 200)
  const user = await api.user('noredis')
  t.equal((await api.request('GET', '/rooms', { token: user.token })).status, 200, 'REST keeps working')
})

const redisUrl = process.env.TEST_REDIS_URL
t.test('/ready follows Redis going away and coming back', { skip: redisUrl === undefined || redisUrl === '' ? 'redis: TEST_REDIS_URL is not set' : false }, async (t) => {
  const { proxy, url: proxied } = await proxyUrl(redisUrl!, 6379)
  t.teardown(async () => await proxy.close())
  const { api } = await startTestServer(t, embedded!, { env: { REDIS_URL: proxied } })
  const status = async (): Promise<number> => (await api.request('GET', '/ready')).status

  t.equal(await readyWithin(status, 200, 5000), 200, 'ready with Redis up')
  proxy.cut()
  t.equal(await readyWithin(status, 503, 5000), 503, 'not ready while Redis is unreachable')
  proxy.restore()
  t.equal(await readyWithin(status, 200, 10_000), 200, 'ready again once Redis is back')
})
