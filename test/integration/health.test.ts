import t from 'tap'
import type { DatabaseHandle } from '../../db/create-db.js'
import { createDatabase } from '../../db/create-db.js'
import { eachBackend, startTestServer } from '../helpers/server.js'

eachBackend(t, async (t, backend) => {
  let failPing = false
  let hangPing = false
  const { api } = await startTestServer(t, backend, {
    openDatabase: async (options) => {
      const real = await createDatabase(options)
      const handle: DatabaseHandle = {
        ...real,
        async ping () {
          if (failPing) throw new Error('simulated outage')
          if (hangPing) await new Promise(() => {})
          await real.ping()
        }
      }
      return handle
    }
  })

  t.test('GET /health answers while the process is up', async (t) => {
    const res = await api.request('GET', '/health')
    t.equal(res.status, 200)
    t.same(res.body, { status: 'ok' })
  })

  t.test('GET /ready follows the database; /health does not', async (t) => {
    const up = await api.request('GET', '/ready')
    t.equal(up.status, 200)
    t.match(up.body, { status: 'ready', checks: { database: { ok: true, ms: Number } } })
    failPing = true
    const down = await api.request('GET', '/ready')
    t.equal(down.status, 503)
    t.equal(down.body.error, 'unavailable')
    t.match(down.body.message, /^not ready: database: not answering/)
    t.match(down.body.checks, { database: { ok: false, ms: Number, error: 'not answering' }, bus: { ok: true }, draining: { ok: true } })
    t.notMatch(down.text, /simulated outage/, 'the error\'s own message stays in the log')
    t.strictSame((await api.request('GET', '/health')).body, { status: 'ok' }, '/health never asks the database')
    failPing = false
    t.equal((await api.request('GET', '/ready')).status, 200)
  })

  t.test('GET /ready does not wait for a database that never answers', async (t) => {
    hangPing = true
    t.teardown(() => { hangPing = false })
    const started = Date.now()
    const down = await api.request('GET', '/ready')
    const took = Date.now() - started
    t.equal(down.status, 503)
    t.match(down.body.checks.database, { ok: false, error: 'timed out after 2000 ms' })
    t.ok(took >= 1900 && took < 4000, `answered after the 2 s timeout (${took} ms)`)
  })
})
