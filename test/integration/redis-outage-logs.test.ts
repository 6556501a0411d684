import t from 'tap'
import { delay, tempDataDir } from '../helpers/chat.js'
import { createClient } from '../helpers/http.js'
import { TEST_SECRET } from '../helpers/server.js'
import { spawnServer, type LogLine } from '../helpers/spawn.js'
import { proxyUrl } from '../helpers/tcp-proxy.js'

// A Redis that goes away is an operator's concern once, not a log line per reconnect attempt or
// per /ready poll: each part that uses Redis says when it went and when it came back.
const redisUrl = process.env.TEST_REDIS_URL
const WARN = 40

t.test('a Redis outage is logged when it starts and when it ends, not per attempt or per /ready', {
  skip: redisUrl === undefined || redisUrl === '' ? 'redis: TEST_REDIS_URL is not set' : false
}, async (t) => {
  const { proxy, url } = await proxyUrl(redisUrl!, 6379)
  t.teardown(async () => await proxy.close())
  const server = spawnServer(t, {
    env: { HOST: '127.0.0.1', PORT: '0', DATA_DIR: tempDataDir(t, 'chat-redis-logs-'), JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'info', REDIS_URL: url, REDIS_PREFIX: `logs-${process.pid}:` }
  })
  const api = createClient(`http://127.0.0.1:${await server.listening()}`)
  const ready = async (): Promise<number> => (await api.request('GET', '/ready')).status
  const until = async (want: number, ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms
    while (Date.now() < deadline) {
      if (await ready() === want) return true
      await delay(100)
    }
    return false
  }
  t.ok(await until(200, 10_000), 'ready with Redis up')
  const before = server.logs.length

  proxy.cut()
  t.ok(await until(503, 10_000), '/ready says 503 while Redis is away')
  // Several seconds of reconnect attempts (every 0.2-2 s) and /ready polls every 100 ms.
  for (let i = 0; i < 30; i++) {
    t.equal(await ready(), 503)
    await delay(100)
  }
  const during = server.logs.slice(before)
  proxy.restore()
  t.ok(await until(200, 15_000), 'ready again once Redis is back')
  await delay(500)
  const after = server.logs.slice(before + during.length)

  const problems = during.filter((line) => line.level >= WARN)
  t.ok(problems.length >= 1, 'the outage is logged')
  // One line per part that depends on Redis (connection, bus, presence), never one per attempt.
  t.ok(problems.length <= 4, `at most a line per part while it lasts (${problems.length}: ${problems.map((l) => l.msg).join(' | ')})`)
  const messages = problems.map((line: LogLine) => `${typeof line.component === 'string' ? line.component : ''}: ${line.msg}`)
  t.same([...new Set(messages)], messages, 'no line repeats')
  t.notOk(during.some((line) => /\/ready|request failed/.test(line.msg)), '/ready polls log nothing')
  t.ok(after.some((line) => line.level < WARN && /back|restored|recovered|resubscribed/i.test(line.msg)), 'the return is logged')
  t.ok(after.filter((line) => line.level >= WARN).length <= 2, 'the return adds no stream of warnings')
})
