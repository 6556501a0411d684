import t from 'tap'
import type { DatabaseHandle } from '../../db/create-db.js'
import { createDatabase } from '../../db/create-db.js'
import { eachBackend, startTestServer } from '../helpers/server.js'

eachBackend(t, async (t, backend) => {
  let failPing = false
  const { api } = await startTestServer(t, backend, {
    openDatabase: async (options) => {
      const real = await createDatabase(options)
      const handle: DatabaseHandle = {
        ...real,
        async ping () {
          if (failPing) throw new Error('simulated outage')
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

  t.test('GET /ready follows the database', async (t) => {
    t.equal((await api.request('GET', '/ready')).status, 200)
    failPing = true
    const down = await api.request('GET', '/ready')
    t.equal(down.status, 503)
    t.equal(down.body.error, 'unavailable')
    t.type(down.body.message, 'string')
    failPing = false
    t.equal((await api.request('GET', '/ready')).status, 200)
  })
})
