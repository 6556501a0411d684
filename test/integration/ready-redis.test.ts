import t, { type Test } from 'tap'
import { backends } from '../helpers/backends.js'
import type { ApiClient } from '../helpers/http.js'
import { startTestServer } from '../helpers/server.js'
import { freePort } from '../helpers/ports.js'
import { redisServerMissing, startRedisServer } from '../helpers/redis-server.js'
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

/** A 503 from /ready naming Redis: the contract's error code plus the per-check detail. */
async function assertRedisNotReady (t: Test, api: ApiClient): Promise<void> {
  const ready = await api.request('GET', '/ready')
  t.equal(ready.status, 503, '/ready: 503')
  t.equal(ready.body.error, 'unavailable', 'the contract\'s error code')
  t.equal(ready.body.status, 'unavailable')
  t.match(ready.body.message, /redis/, 'the message names Redis')
  t.match(ready.body.checks, { database: { ok: true }, redis: { ok: false, error: String }, draining: { ok: true } }, 'the redis check is the one failing')
}

t.test('an unreachable Redis makes /ready 503 but does not stop the server', async (t) => {
  const { api } = await startTestServer(t, embedded!, { env: { REDIS_URL: `redis://127.0.0.1:${await freePort()}` } })
  await assertRedisNotReady(t, api)
  t.equal((await api.request('GET', '/health')).status, 200)
  const user = await api.user('noredis')
  t.equal((await api.request('GET', '/rooms', { token: user.token })).status, 200, 'REST keeps working')
})

t.test('/ready follows a Redis server that stops and starts again', { skip: redisServerMissing() ?? false }, async (t) => {
  const redis = await startRedisServer(t)
  const { api } = await startTestServer(t, embedded!, { env: { REDIS_URL: redis.url, REDIS_PREFIX: `ready-${process.pid}:` } })
  const status = async (): Promise<number> => (await api.request('GET', '/ready')).status

  t.equal(await readyWithin(status, 200, 10_000), 200, 'ready with Redis up')
  t.match((await api.request('GET', '/ready')).body.checks, { redis: { ok: true, ms: Number }, bus: { ok: true } })
  await redis.stop()
  t.equal(await readyWithin(status, 503, 5000), 503, 'not ready once Redis stopped')
  await assertRedisNotReady(t, api)
  t.equal((await api.request('GET', '/health')).status, 200, '/health: the process is fine')
  await redis.start()
  t.equal(await readyWithin(status, 200, 15_000), 200, 'ready again once Redis is back')
  t.match((await api.request('GET', '/ready')).body.checks, { redis: { ok: true }, bus: { ok: true } })
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
