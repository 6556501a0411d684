import t from 'tap'
import { startTestServer, eachBackend, TEST_SECRET } from '../helpers/server.js'
import { spawnServer } from '../helpers/spawn.js'
import { tempDataDir } from '../helpers/chat.js'
import { createClient } from '../helpers/http.js'

// uWS binds with SO_REUSEPORT unless told otherwise: a second server on a port in use would then
// start, and the kernel would split connections between the two.
eachBackend(t, async (t, backend) => {
  const first = await startTestServer(t, backend)
  const port = first.server.port

  t.test('a second server on the same PORT refuses to start, with one line saying why', async (t) => {
    const { url, drop } = await backend.provision()
    t.teardown(drop)
    const second = spawnServer(t, {
      env: { HOST: '127.0.0.1', PORT: String(port), DATA_DIR: tempDataDir(t, 'chat-port-'), DATABASE_URL: url ?? '', JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'info' }
    })
    const exit = await second.exited(60_000)
    t.same(exit, { code: 1, signal: null }, 'exits with code 1')
    t.notOk(second.logs.some((line) => line.msg.startsWith('listening on')), 'never says it listens')
    const fatal = second.logs.filter((line) => line.level === 60)
    t.equal(fatal.length, 1, 'one fatal line')
    t.match(fatal[0]?.msg, new RegExp(`PORT ${port} .*already in use`), 'it names the port and the reason')
    t.notOk('err' in (fatal[0] ?? {}), 'no stack trace for an operator\'s mistake')
  })

  t.test('the first server keeps every connection', async (t) => {
    // With a shared port some of these would have reached the second server while it lived.
    const api = createClient(`http://127.0.0.1:${port}`)
    const statuses = await Promise.all(Array.from({ length: 20 }, async () => (await api.request('GET', '/health')).status))
    t.same(statuses, Array(20).fill(200))
  })

  t.test('in-process: startServer on a port in use rejects', async (t) => {
    await t.rejects(startTestServer(t, backend, { env: { PORT: String(port) } }), { name: 'ListenError', message: new RegExp(`PORT ${port}`) })
  })
})
