import t from 'tap'
import { delay } from '../helpers/chat.js'
import { proxiedDatabase } from '../helpers/database-proxy.js'
import { captureLogs } from '../helpers/log-capture.js'
import { eachBackend, startTestServer } from '../helpers/server.js'

// The database goes away behind a proxy the test cuts (the machine's Postgres, or an embedded
// database the test started): REST answers 503 unavailable, /ready says the database is what
// fails, /health stays about the process, and the log says so once when it starts and once when
// it ends, however many requests, writes and /ready polls fail in between.
const WARN = 40

eachBackend(t, async (t, backend) => {
  const { proxy, backend: proxied, env } = await proxiedDatabase(t, backend)
  const logs = captureLogs('info')
  const { api } = await startTestServer(t, proxied, { env, logger: logs.logger })
  const alice = await api.user('down')
  t.equal((await api.request('GET', '/rooms', { token: alice.token })).status, 200)
  const ready = await api.request('GET', '/ready')
  t.equal(ready.status, 200, '/ready while up')
  t.equal(ready.body.checks.database.ok, true)
  const before = logs.lines.length

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
  const sent = await api.request('POST', '/rooms/general/messages', { token: alice.token, json: { body: 'into the void' } })
  t.equal(sent.status, 503, 'a message while down: the writer refuses it')

  const down = await api.request('GET', '/ready')
  t.equal(down.status, 503, '/ready while down')
  t.equal(down.body.error, 'unavailable', 'the contract\'s error code')
  t.equal(down.body.status, 'unavailable')
  t.match(down.body.message, /database/, 'the message names the database')
  t.match(down.body.checks, { database: { ok: false, error: String }, bus: { ok: true }, draining: { ok: true } }, 'only the database check fails')
  t.notMatch(down.text, /127\.0\.0\.1|postgres:\/\//, 'no address in a body anyone may read')
  const health = await api.request('GET', '/health')
  t.equal(health.status, 200, '/health: the process is still up')
  t.strictSame(health.body, { status: 'ok' })

  // A few seconds of an outage: rechecks every second, /ready polls, requests.
  for (let i = 0; i < 10; i++) {
    t.equal((await api.request('GET', '/ready')).status, 503)
    t.equal((await api.request('GET', '/rooms', { token: alice.token })).status, 503)
    await delay(200)
  }
  const during = logs.lines.slice(before)
  const problems = during.filter((line) => line.level >= WARN)
  t.match(problems, [{ msg: /^database unreachable/ }], `one warning for the whole outage (${problems.map((l) => l.msg).join(' | ')})`)
  t.equal(problems.length, 1, 'not one per request, write, reconnect or poll')

  proxy.restore()
  // Nothing asks the database now: its recheck (every second) finds it back on its own.
  let back = logs.lines.slice(before + during.length).filter((line) => /^database reachable again/.test(line.msg))
  for (let waited = 0; back.length === 0 && waited < 5000; waited += 100) {
    await delay(100)
    back = logs.lines.slice(before + during.length).filter((line) => /^database reachable again/.test(line.msg))
  }
  t.match(back, [{ level: 30, downMs: Number }], 'one info line when it is back, with how long it was down')
  t.ok(Number(back[0]?.downMs) >= 2000, `downMs covers the outage (${String(back[0]?.downMs)})`)

  t.equal((await api.request('GET', '/rooms', { token: alice.token })).status, 200, 'recovered')
  const again = await api.request('GET', '/ready')
  t.equal(again.status, 200, '/ready recovered')
  t.equal(again.body.checks.database.ok, true)
  const after = logs.lines.slice(before + during.length)
  t.equal(after.filter((line) => /^database/.test(line.msg)).length, 1, 'the return is logged once')
  t.equal(after.filter((line) => line.level >= WARN).length, 0, 'and no warning after it')
})
