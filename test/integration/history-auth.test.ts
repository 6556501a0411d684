import t from 'tap'
import { assertError } from '../helpers/assertions.js'
import { backends } from '../helpers/backends.js'
import { eachBackend, startTestServer } from '../helpers/server.js'
import { decodeJwt, signJwt } from '../helpers/tokens.js'

// History checks its reader in its own statement, not in the shared authenticate hook, and tokens
// are remembered once verified: what `authenticate` guarantees must hold on this route as well.

const nowSeconds = (): number => Math.floor(Date.now() / 1000)

eachBackend(t, async (t, backend) => {
  const { api, server } = await startTestServer(t, backend)
  const history = async (token: string): Promise<Awaited<ReturnType<typeof api.request>>> =>
    await api.request('GET', '/rooms/general/messages', { token })

  t.test('a token whose user was deleted: 401 at once, though the token worked a moment ago', async (t) => {
    const user = await api.user('hist_gone')
    t.equal((await history(user.token)).status, 200, 'the token works')
    await server.app.db.deleteFrom('users').where('id', '=', user.id).execute()
    assertError(t, await history(user.token), 401, 'unauthorized', 'the same token once its user is gone')
    assertError(t, await api.request('GET', '/rooms/no-such-room/messages', { token: user.token }), 401, 'unauthorized', 'before the room is looked at')
  })

  t.test('a signed token naming no user: 401', async (t) => {
    const user = await api.user('hist_ghost')
    const { header, payload } = decodeJwt(user.token)
    assertError(t, await history(signJwt(header, { ...payload, sub: '987654321' })), 401, 'unauthorized', 'sub of no user')
  })
})

t.test('a token verified before stays refused once it expires', async (t) => {
  const [embedded] = backends().run
  const { api } = await startTestServer(t, embedded!, { env: { JWT_TTL: '1' } })
  const user = await api.user('hist_expiring')
  const { header, payload } = decodeJwt(user.token)
  const token = signJwt(header, { ...payload, iat: nowSeconds(), exp: nowSeconds() + 1 })
  t.equal((await api.request('GET', '/rooms/general/messages', { token })).status, 200, 'fresh')
  // exp has one-second resolution: two seconds guarantees it has passed.
  await new Promise((resolve) => setTimeout(resolve, 2100))
  const res = await api.request('GET', '/rooms/general/messages', { token })
  assertError(t, res, 401, 'unauthorized', 'expired')
  t.equal(res.body?.message, 'token expired', 'says why')
})
