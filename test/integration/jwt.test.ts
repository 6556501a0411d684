import t, { type Test } from 'tap'
import { assertError } from '../helpers/assertions.js'
import type { ApiResponse } from '../helpers/http.js'
import { backends } from '../helpers/backends.js'
import { eachBackend, startTestServer } from '../helpers/server.js'
import { b64url, decodeJwt, signJwt } from '../helpers/tokens.js'

const OTHER_SECRET = 'another-secret-that-is-also-32-bytes-or-more'

type Json = Record<string, unknown>

function now (): number {
  return Math.floor(Date.now() / 1000)
}

// Whatever is wrong with the credentials, the answer is the same 401: nothing says which part failed.
function assertUnauthorized (t: Test, res: ApiResponse, label: string): void {
  assertError(t, res, 401, 'unauthorized', label)
}

eachBackend(t, async (t, backend) => {
  // Default JWT_TTL, so the login token is checked against the documented 3600.
  const { api, config } = await startTestServer(t, backend)
  const user = await api.user('jwt')
  const HS256 = { alg: 'HS256', typ: 'JWT' }
  // aud names this server's database; it is copied from a token the server issued.
  const { aud } = decodeJwt(user.token).payload
  const claims = (extra: Json = {}): Json => ({ sub: user.id, username: user.username, aud, iat: now(), exp: now() + 300, ...extra })
  const rooms = async (authorization?: string): Promise<ApiResponse> =>
    await api.request('GET', '/rooms', authorization === undefined ? {} : { headers: { authorization } })

  t.test('the login token authenticates and lives JWT_TTL seconds', async (t) => {
    t.equal(config.jwt.ttlSeconds, 3600, 'the default TTL')
    const res = await api.request('POST', '/auth/login', { json: { username: user.username, password: 'correct-horse-battery' } })
    t.equal(res.status, 200)
    t.equal(res.body.expiresIn, 3600)
    const { header, payload } = decodeJwt(res.body.token as string)
    t.equal(header.alg, 'HS256')
    t.equal(payload.sub, user.id)
    t.equal(payload.username, user.username)
    t.type(payload.iat, 'number')
    t.type(payload.exp, 'number')
    t.ok(Math.abs((payload.iat as number) - now()) <= 5, 'issued now')
    t.equal((payload.exp as number) - (payload.iat as number), 3600, 'exp - iat == JWT_TTL')

    const ok = await rooms(`Bearer ${res.body.token as string}`)
    t.equal(ok.status, 200)
    t.ok(Array.isArray(ok.body.rooms), 'rooms listed')
    t.ok((ok.body.rooms as Array<{ id: string }>).some((room) => room.id === 'general'), 'general is visible')
  })

  t.test('a hand-made HS256 token with the server secret works', async (t) => {
    const res = await rooms(`Bearer ${signJwt(HS256, claims())}`)
    t.equal(res.status, 200)
    t.ok(Array.isArray(res.body.rooms))
    // Without typ too: it is optional in RFC 7519.
    t.equal((await rooms(`Bearer ${signJwt({ alg: 'HS256' }, claims())}`)).status, 200, 'no typ header')
  })

  t.test('malformed Authorization headers are 401', async (t) => {
    const good = signJwt(HS256, claims())
    const cases: Array<[string, string | undefined]> = [
      ['no header', undefined],
      ['empty header', ''],
      ['"Bearer" alone', 'Bearer'],
      ['Basic credentials', `Basic ${Buffer.from(`${user.username}:correct-horse-battery`).toString('base64')}`],
      ['the token without a scheme', good],
      ['a token under another scheme', `Token ${good}`],
      ['garbage', 'Bearer garbage'],
      ['three empty parts', 'Bearer ..'],
      ['three junk parts', 'Bearer a.b.c'],
      ['two tokens', `Bearer ${good} ${good}`],
      ['a token with a trailing part', `Bearer ${good}.extra`]
    ]
    for (const [label, header] of cases) assertUnauthorized(t, await rooms(header), label)
  })

  t.test('badly signed or altered tokens are 401', async (t) => {
    const good = signJwt(HS256, claims())
    const [h = '', p = '', s = ''] = good.split('.')
    const otherUser = b64url(claims({ sub: '1', username: 'admin' }))
    const flipped = s.slice(0, -2) + (s.at(-2) === 'A' ? 'B' : 'A') + s.slice(-1)
    const cases: Array<[string, string]> = [
      ['signed with another secret', signJwt(HS256, claims(), { secret: OTHER_SECRET })],
      ['payload swapped, signature kept', `${h}.${otherUser}.${s}`],
      ['signature altered', `${h}.${p}.${flipped}`],
      ['signature removed', `${h}.${p}.`],
      ['signature of another token', `${h}.${p}.${signJwt(HS256, claims({ username: 'x' })).split('.')[2] ?? ''}`]
    ]
    for (const [label, token] of cases) assertUnauthorized(t, await rooms(`Bearer ${token}`), label)
  })

  t.test('the algorithm is pinned to HS256', async (t) => {
    const payload = claims()
    const unsigned = (alg: string): string => signJwt({ alg, typ: 'JWT' }, payload, { unsigned: true })
    const cases: Array<[string, string]> = [
      ['alg none', unsigned('none')],
      ['alg None', unsigned('None')],
      ['alg NONE', unsigned('NONE')],
      ['alg none with an HS256 signature attached', signJwt({ alg: 'none', typ: 'JWT' }, payload)],
      ['HS384 with the right secret', signJwt({ alg: 'HS384', typ: 'JWT' }, payload, { hash: 'sha384' })],
      ['HS512 with the right secret', signJwt({ alg: 'HS512', typ: 'JWT' }, payload, { hash: 'sha512' })],
      // Key confusion: a header naming an asymmetric algorithm over an HMAC made with the secret.
      ['RS256 header over an HMAC', signJwt({ alg: 'RS256', typ: 'JWT' }, payload)],
      ['no alg at all', signJwt({ typ: 'JWT' }, payload)]
    ]
    for (const [label, token] of cases) assertUnauthorized(t, await rooms(`Bearer ${token}`), label)
  })

  t.test('claims: exp is required and checked, sub and aud are required', async (t) => {
    const { exp: _exp, ...withoutExp } = claims()
    const { sub: _sub, ...withoutSub } = claims()
    const { aud: _aud, ...withoutAud } = claims()
    const cases: Array<[string, Json]> = [
      ['no exp', withoutExp],
      ['expired a minute ago', claims({ iat: now() - 120, exp: now() - 60 })],
      ['expired just now', claims({ iat: now() - 120, exp: now() - 1 })],
      ['exp as a string', claims({ exp: String(now() + 300) })],
      ['exp null', claims({ exp: null })],
      ['no sub', withoutSub],
      ['no aud (a token from before v1.1)', withoutAud],
      ['aud of another database', claims({ aud: 'chat:0123456789abcdef0123456789abcdef' })],
      ['aud without the chat: prefix', claims({ aud: String(aud).slice('chat:'.length) })],
      ['aud as a list without this database', claims({ aud: ['chat:other', 'another-service'] })],
      ['sub that is not a user id', claims({ sub: 'admin' })],
      ['sub as a number', claims({ sub: Number(user.id) })],
      ['not valid yet (nbf in the future)', claims({ nbf: now() + 300 })]
    ]
    for (const [label, payload] of cases) assertUnauthorized(t, await rooms(`Bearer ${signJwt(HS256, payload)}`), label)
  })
})

t.test('a login token stops working once JWT_TTL has passed', async (t) => {
  const [embedded] = backends().run
  const { api } = await startTestServer(t, embedded!, { env: { JWT_TTL: '1' } })
  const user = await api.user('shortlived')
  t.equal((await api.request('GET', '/rooms', { token: user.token })).status, 200, 'fresh token works')
  // exp has one-second resolution: two seconds guarantees it has passed.
  await new Promise((resolve) => setTimeout(resolve, 2100))
  assertError(t, await api.request('GET', '/rooms', { token: user.token }), 401, 'unauthorized', 'expired login token')
})
