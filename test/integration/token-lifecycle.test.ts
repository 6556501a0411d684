// The token lifecycle of API.md v1.1: refresh tokens (`POST /auth/login`'s extra fields,
// `/auth/refresh`, `/auth/logout`), `GET /auth/me`, access tokens bound to the database that
// issued them and to a user that exists (REST and the socket upgrade), and the socket's `auth`
// frame, which moves the socket's expiry.
//
// What is fixed: a refresh token is opaque, stored only as its SHA-256, and spent by its one
// exchange; a spent token sent again revokes its whole login, the newest token included (RFC 9700
// §4.14.2), and of concurrent exchanges of one token exactly one succeeds. Unknown, expired,
// revoked tokens and those of a deleted user get 401. An access token signed with the right
// secret for another database, or for a deleted user, gets 401 and a refused upgrade; a database
// that cannot be reached during the check gets 503 (the token may be fine).
import { createHash } from 'node:crypto'
import { connect as tcpConnect } from 'node:net'
import { sql, type KyselyPlugin, type PluginTransformQueryArgs, type PluginTransformResultArgs, type QueryResult, type RootOperationNode, type UnknownRow } from 'kysely'
import t, { type Test } from 'tap'
import { createDatabase } from '../../db/create-db.js'
import type { OpenDatabase } from '../../plugins/infra/db.js'
import { assertError } from '../helpers/assertions.js'
import { backends } from '../helpers/backends.js'
import { connectUntilTeardown, delay, tempDataDir, waitUntil } from '../helpers/chat.js'
import type { ApiClient, ApiResponse } from '../helpers/http.js'
import { eachBackend, startTestServer, type TestServer } from '../helpers/server.js'
import { nextOrNull, refusedUpgrade, type ConnectedSocket } from '../helpers/socket.js'
import { proxyUrl } from '../helpers/tcp-proxy.js'
import { decodeJwt, signJwt } from '../helpers/tokens.js'

const PASSWORD = 'correct-horse-battery'
const LOGIN_KEYS = ['expiresIn', 'refreshExpiresIn', 'refreshToken', 'token', 'tokenType', 'user']
/** 32 random bytes in base64url. */
const REFRESH_TOKEN = /^[A-Za-z0-9_-]{43}$/
const HS256 = { alg: 'HS256', typ: 'JWT' }

interface Session { readonly id: string, readonly username: string, readonly token: string, readonly refreshToken: string }

const embedded = backends().run.find((b) => b.name === 'embedded')
const postgres = backends().run.find((b) => b.name === 'postgres')
const skipPostgres = postgres === undefined ? 'postgres: TEST_DATABASE_URL is not set' : false

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')
const nowSeconds = (): number => Math.floor(Date.now() / 1000)
/** The server's own claims with some changed, signed again with the test servers' secret. */
const resign = (token: string, claims: Record<string, unknown>): string => signJwt(HS256, { ...decodeJwt(token).payload, ...claims })
const expOf = (token: string): number => decodeJwt(token).payload.exp as number

async function logIn (api: ApiClient, username: string): Promise<ApiResponse> {
  return await api.request('POST', '/auth/login', { json: { username, password: PASSWORD } })
}

async function refresh (api: ApiClient, refreshToken: unknown): Promise<ApiResponse> {
  return await api.request('POST', '/auth/refresh', { json: { refreshToken } })
}

async function logOut (api: ApiClient, refreshToken: unknown): Promise<ApiResponse> {
  return await api.request('POST', '/auth/logout', { json: { refreshToken } })
}

async function me (api: ApiClient, token: string): Promise<ApiResponse> {
  return await api.request('GET', '/auth/me', { token })
}

/** A fresh user, logged in: its access and refresh tokens. */
async function session (api: ApiClient, prefix = 'tl'): Promise<Session> {
  const { id, username } = await api.user(prefix)
  return { id, username, ...await logInAgain(api, username) }
}

/** Another login of `username`: a new refresh token family. */
async function logInAgain (api: ApiClient, username: string): Promise<{ token: string, refreshToken: string }> {
  const res = await logIn(api, username)
  if (res.status !== 200) throw new Error(`login ${username}: ${res.status} ${res.text}`)
  return { token: res.body.token, refreshToken: res.body.refreshToken }
}

/** Checks a login or refresh response: API.md's fields, and a working token for `user`. */
async function checkIssued (t: Test, api: ApiClient, res: ApiResponse, user: { id: string, username: string }, ttls: { access: number, refresh: number }, label: string): Promise<void> {
  t.equal(res.status, 200, `${label}: 200`)
  t.strictSame(Object.keys(res.body).sort(), LOGIN_KEYS, `${label}: the fields of login`)
  t.equal(res.body.tokenType, 'Bearer', `${label}: tokenType`)
  t.equal(res.body.expiresIn, ttls.access, `${label}: expiresIn is JWT_TTL`)
  t.equal(res.body.refreshExpiresIn, ttls.refresh, `${label}: refreshExpiresIn is REFRESH_TTL`)
  t.match(res.body.refreshToken, REFRESH_TOKEN, `${label}: an opaque refresh token of 32 random bytes`)
  t.strictSame(res.body.user, { id: user.id, username: user.username }, `${label}: user`)
  t.equal((await me(api, res.body.token)).status, 200, `${label}: the access token works`)
}

/** Deletes a user row as an administrator would (what API.md means by a user that no longer exists). */
async function deleteUser (server: TestServer, id: string): Promise<void> {
  await server.server.app.db.deleteFrom('users').where('id', '=', id).execute()
}

/** The refresh token rows (expired or not) and logins in the database. */
async function sessionRows (server: TestServer): Promise<{ tokens: number, expired: number, logins: number }> {
  const { db } = server.server.app
  const tokens = await db.selectFrom('refresh_tokens').select([
    (eb) => eb.fn.countAll<string>().as('n'),
    sql<string>`count(*) filter (where expires_at <= now())`.as('expired')
  ]).executeTakeFirstOrThrow()
  const logins = await db.selectFrom('logins').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()
  return { tokens: Number(tokens.n), expired: Number(tokens.expired), logins: Number(logins.n) }
}

eachBackend(t, async (t, backend) => {
  const server = await startTestServer(t, backend, { env: { JWT_TTL: '600' } })
  const { api, baseUrl } = server
  const ttls = { access: 600, refresh: 2_592_000 }

  t.test('login also returns a refresh token, stored only as its SHA-256', async (t) => {
    const user = await api.user('tl_login')
    const res = await logIn(api, user.username)
    await checkIssued(t, api, res, user, ttls, 'login')
    const { refreshToken } = res.body as Session
    const { db } = server.server.app
    const stored = await db.selectFrom('refresh_tokens').selectAll().where('token_hash', '=', sha256(refreshToken)).executeTakeFirst()
    t.ok(stored !== undefined, 'a row under the token\'s SHA-256')
    t.equal(stored?.spent_at, null, 'not spent')
    const lifetime = ((stored?.expires_at.getTime() ?? 0) - (stored?.created_at.getTime() ?? 0)) / 1000
    t.ok(Math.abs(lifetime - ttls.refresh) < 5, `it lives REFRESH_TTL (${lifetime} s)`)
    const raw = await db.selectFrom('refresh_tokens').select('token_hash').where('token_hash', '=', refreshToken).executeTakeFirst()
    t.equal(raw, undefined, 'the token itself is not stored')
    const second = await logIn(api, user.username)
    t.not(second.body.refreshToken, refreshToken, 'every login gets its own')
  })

  t.test('refresh: a new access token and a new refresh token; the one sent is spent', async (t) => {
    const user = await session(api, 'tl_rot')
    const first = await refresh(api, user.refreshToken)
    await checkIssued(t, api, first, user, ttls, 'refresh')
    t.not(first.body.refreshToken, user.refreshToken, 'a new refresh token')
    t.equal(decodeJwt(first.body.token).payload.sub, user.id, 'the access token is the same user\'s')
    const second = await refresh(api, first.body.refreshToken)
    await checkIssued(t, api, second, user, ttls, 'the new refresh token works too')
    t.equal((await me(api, user.token)).status, 200, 'the earlier access token still works until it expires')
  })

  t.test('reuse of a spent refresh token revokes its whole login, the newest token included', async (t) => {
    const user = await session(api, 'tl_reuse')
    const other = await logInAgain(api, user.username)
    const r2 = (await refresh(api, user.refreshToken)).body.refreshToken as string
    const r3 = (await refresh(api, r2)).body.refreshToken as string
    assertError(t, await refresh(api, user.refreshToken), 401, 'unauthorized', 'the first token again')
    assertError(t, await refresh(api, r3), 401, 'unauthorized', 'the newest token of that login')
    assertError(t, await refresh(api, r2), 401, 'unauthorized', 'the middle one')
    const { db } = server.server.app
    const login = await db.selectFrom('refresh_tokens').innerJoin('logins', 'logins.id', 'refresh_tokens.login_id')
      .select('logins.revoked_at').where('token_hash', '=', sha256(r3)).executeTakeFirstOrThrow()
    t.ok(login.revoked_at instanceof Date, 'the login is marked revoked')
    t.equal((await refresh(api, other.refreshToken)).status, 200, 'another login of the same user is untouched')
    t.equal((await me(api, user.token)).status, 200, 'access tokens live on until they expire (they are not looked up)')
  })

  t.test('concurrent exchanges of one refresh token: exactly one succeeds', async (t) => {
    for (let round = 0; round < 3; round++) {
      const user = await session(api, 'tl_race')
      const answers = await Promise.all(Array.from({ length: 4 }, async () => await refresh(api, user.refreshToken)))
      const statuses = answers.map((res) => res.status).sort()
      t.strictSame(statuses, [200, 401, 401, 401], `round ${round}: one 200, the rest 401`)
      const winner = answers.find((res) => res.status === 200)
      // The losers were reuse: the login is gone, the winner's new token with it.
      assertError(t, await refresh(api, winner?.body.refreshToken), 401, 'unauthorized', `round ${round}: the winner's token was revoked by the reuse`)
    }
  })

  t.test('logout revokes every refresh token of the login and always answers 204', async (t) => {
    const user = await session(api, 'tl_out')
    const other = await logInAgain(api, user.username)
    const res = await logOut(api, user.refreshToken)
    t.equal(res.status, 204, 'logout: 204')
    t.equal(res.text, '', 'no body')
    assertError(t, await refresh(api, user.refreshToken), 401, 'unauthorized', 'refresh after logout')
    t.equal((await logOut(api, user.refreshToken)).status, 204, 'logging out twice: 204')
    t.equal((await logOut(api, 'never-issued')).status, 204, 'an unknown token: 204')
    t.equal((await refresh(api, other.refreshToken)).status, 200, 'the user\'s other login is untouched')

    // Logging out with a spent token of the login ends the login too.
    const again = await session(api, 'tl_out2')
    const r2 = (await refresh(api, again.refreshToken)).body.refreshToken as string
    t.equal((await logOut(api, again.refreshToken)).status, 204)
    assertError(t, await refresh(api, r2), 401, 'unauthorized', 'the login\'s current token after logout with a spent one')
  })

  t.test('refresh and logout bodies are validated: 400 bad_request', async (t) => {
    const user = await session(api, 'tl_bad')
    const bodies: Array<[string, unknown]> = [
      ['no refreshToken', {}],
      ['an empty refreshToken', { refreshToken: '' }],
      ['a number', { refreshToken: 42 }],
      ['null', { refreshToken: null }],
      ['over 512 characters', { refreshToken: 'a'.repeat(513) }],
      ['an extra field', { refreshToken: user.refreshToken, userId: user.id }],
      ['an array', [user.refreshToken]]
    ]
    for (const [label, json] of bodies) {
      assertError(t, await api.request('POST', '/auth/refresh', { json }), 400, 'bad_request', `refresh with ${label}`)
      assertError(t, await api.request('POST', '/auth/logout', { json }), 400, 'bad_request', `logout with ${label}`)
    }
    t.equal((await refresh(api, user.refreshToken)).status, 200, 'the token was not spent by the refused requests')
  })

  t.test('refresh refuses what is not a live refresh token: 401', async (t) => {
    const user = await session(api, 'tl_unknown')
    const cases: Array<[string, string]> = [
      ['an unknown token', 'A'.repeat(43)],
      ['the access token', user.token],
      ['the token\'s hash', sha256(user.refreshToken)],
      ['512 characters', 'b'.repeat(512)]
    ]
    for (const [label, token] of cases) assertError(t, await refresh(api, token), 401, 'unauthorized', label)
    t.equal((await refresh(api, user.refreshToken)).status, 200, 'control: the real one works')
  })

  t.test('GET /auth/me: the user and the token\'s expiry, else 401', async (t) => {
    const user = await session(api, 'tl_me')
    const res = await me(api, user.token)
    t.equal(res.status, 200)
    t.strictSame(res.body, { user: { id: user.id, username: user.username }, expiresAt: new Date(expOf(user.token) * 1000).toISOString() })
    const expired = resign(user.token, { iat: nowSeconds() - 120, exp: nowSeconds() - 60 })
    assertError(t, await me(api, expired), 401, 'unauthorized', 'an expired token')
    assertError(t, await api.request('GET', '/auth/me'), 401, 'unauthorized', 'no token')
    assertError(t, await me(api, 'garbage'), 401, 'unauthorized', 'garbage')
    assertError(t, await me(api, user.refreshToken), 401, 'unauthorized', 'the refresh token')
  })

  t.test('a deleted user: its tokens get 401, its upgrades are refused, its refresh tokens are gone', async (t) => {
    const user = await session(api, 'tl_gone')
    const socket = await connectUntilTeardown(t, baseUrl, user.token)
    await deleteUser(server, user.id)
    assertError(t, await me(api, user.token), 401, 'unauthorized', 'GET /auth/me')
    assertError(t, await api.request('GET', '/rooms', { token: user.token }), 401, 'unauthorized', 'GET /rooms')
    assertError(t, await api.request('POST', '/rooms', { token: user.token, json: { id: `gone-${user.id}` } }), 401, 'unauthorized', 'POST /rooms (was a 500)')
    for (const via of ['protocol', 'header', 'query'] as const) {
      const refused = await refusedUpgrade(baseUrl, { token: user.token, via })
      t.equal(refused.status, 401, `upgrade via ${via}: 401`)
      t.equal(refused.body?.error, 'unauthorized', `upgrade via ${via}: {error: unauthorized}`)
      t.type(refused.body?.message, 'string', `upgrade via ${via}: a message`)
    }
    assertError(t, await refresh(api, user.refreshToken), 401, 'unauthorized', 'refresh')
    const frame = await socket.request({ type: 'auth', token: user.token })
    t.match(frame, { type: 'error', code: 'unauthorized' }, 'an open socket\'s auth with its user gone: unauthorized')
  })

  t.test('many upgrades at once, some for a deleted user: each gets its own answer', async (t) => {
    const users = await Promise.all(Array.from({ length: 6 }, async () => await session(api, 'tl_burst')))
    const gone = users.filter((_, i) => i % 2 === 1)
    for (const u of gone) await deleteUser(server, u.id)
    const attempts = await Promise.all(users.map(async (u, i) => i % 2 === 1
      ? await refusedUpgrade(baseUrl, { token: u.token }).then((res) => res.status)
      : await connectUntilTeardown(t, baseUrl, u.token).then((s) => s.welcome.user?.id)))
    t.strictSame(attempts, users.map((u, i) => i % 2 === 1 ? 401 : u.id), 'users that exist get their socket, the others 401')
  })
})

// Two databases, one JWT_SECRET: a token is good only where it was issued.
eachBackend(t, async (t, backend) => {
  const [a, b] = await Promise.all([startTestServer(t, backend), startTestServer(t, backend)])
  const [onA, onB] = await Promise.all([session(a.api, 'tl_db'), session(b.api, 'tl_db')])
  t.equal(onA.id, onB.id, 'the same user id exists in both databases (a fresh database counts from 1)')

  t.test('another database\'s token is refused on REST and on the upgrade', async (t) => {
    assertError(t, await me(b.api, onA.token), 401, 'unauthorized', 'GET /auth/me')
    assertError(t, await b.api.request('GET', '/rooms', { token: onA.token }), 401, 'unauthorized', 'GET /rooms')
    t.equal((await refusedUpgrade(b.baseUrl, { token: onA.token })).status, 401, 'upgrade: 401')
    assertError(t, await refresh(b.api, onA.refreshToken), 401, 'unauthorized', 'its refresh token')
    t.equal((await me(a.api, onA.token)).status, 200, 'control: at home it works')
  })

  t.test('another database\'s token on the auth frame: unauthorized', async (t) => {
    const socket = await connectUntilTeardown(t, b.baseUrl, onB.token)
    const reply = await socket.request({ type: 'auth', token: onA.token })
    t.match(reply, { type: 'error', code: 'unauthorized' })
  })
})

t.test('a dev secret kept in DATA_DIR: the embedded database\'s token is refused by a Postgres using the same DATA_DIR', { skip: skipPostgres }, async (t) => {
  const dataDir = tempDataDir(t, 'chat-devsecret-')
  // No JWT_SECRET: both generate or read DATA_DIR/jwt-secret.
  const env = { DATA_DIR: dataDir, JWT_SECRET: '' }
  const first = await startTestServer(t, embedded!, { env })
  const second = await startTestServer(t, postgres!, { env })
  t.equal(first.config.jwt.secret, second.config.jwt.secret, 'one secret for both')
  const [onEmbedded, onPostgres] = [await session(first.api, 'tl_dev'), await session(second.api, 'tl_dev')]
  t.equal(onEmbedded.id, '1', 'user 1 on the embedded database')
  t.equal(onPostgres.id, '1', 'user 1 on Postgres')
  assertError(t, await me(second.api, onEmbedded.token), 401, 'unauthorized', 'the embedded database\'s token on Postgres')
  t.equal((await refusedUpgrade(second.baseUrl, { token: onEmbedded.token })).status, 401, 'and its upgrade')
  t.equal((await me(second.api, onPostgres.token)).status, 200, 'control: Postgres\'s own token works')
})

// Short lifetimes: JWT_TTL=2 and REFRESH_TTL=2 (seconds; exp has one-second resolution).
eachBackend(t, async (t, backend) => {
  const server = await startTestServer(t, backend, { env: { JWT_TTL: '2', REFRESH_TTL: '2' } })
  const { api, baseUrl } = server

  t.test('a refresh token expires after REFRESH_TTL, and expired rows are deleted', async (t) => {
    const user = await session(api, 'tl_exp')
    const fresh = await session(api, 'tl_exp')
    t.equal((await refresh(api, fresh.refreshToken)).status, 200, 'within REFRESH_TTL it works')
    await delay(3100)
    assertError(t, await refresh(api, user.refreshToken), 401, 'unauthorized', 'after REFRESH_TTL')
    // That refresh (and every login) deleted what had expired: the rows do not pile up.
    const rows = await sessionRows(server)
    t.equal(rows.expired, 0, 'no expired refresh token left')
    t.equal(rows.tokens, 0, 'every token had expired')
    t.equal(rows.logins, 0, 'logins without tokens are deleted with them')
  })

  t.test('auth frames: a socket that sends a fresh token outlives its first one; one that does not is closed', async (t) => {
    const user = await session(api, 'tl_auth')
    const first = expOf(user.token)
    const kept = await connectUntilTeardown(t, baseUrl, user.token)
    const lapsed = await connectUntilTeardown(t, baseUrl, user.token)
    t.equal(kept.welcome.expiresAt, new Date(first * 1000).toISOString(), 'welcome.expiresAt is the token\'s exp')
    // A token issued a second later expires at least a second later.
    await waitUntil(() => Date.now() >= (first - 1) * 1000 + 50, 3000, 'the second before the first token expires')
    const renewed = await refresh(api, user.refreshToken)
    t.equal(renewed.status, 200)
    const second = expOf(renewed.body.token)
    t.ok(second > first, `the new token expires later (${second} > ${first})`)
    t.ok(kept.ws.readyState === kept.ws.OPEN, 'still open before the first expiry')
    const authed = await kept.request({ type: 'auth', token: renewed.body.token })
    t.match(authed, { type: 'authed', expiresAt: new Date(second * 1000).toISOString() }, 'authed {expiresAt} of the new token, with the ref')
    t.strictSame(Object.keys(authed).sort(), ['expiresAt', 'ref', 'type'])

    t.strictSame(await lapsed.closed, { code: 1008, reason: 'token expired' }, 'the socket without auth closes with 1008')
    t.ok(Date.now() >= first * 1000 - 50, 'at its expiry')
    t.equal((await kept.request({ type: 'ping' })).type, 'pong', 'the one with a fresh token is alive past the first expiry')
    t.strictSame(await kept.closed, { code: 1008, reason: 'token expired' }, 'and closes at the new expiry')
    t.ok(Date.now() >= second * 1000 - 50, 'not before it')
  })

  t.test('auth frames that cannot extend: error unauthorized with the ref; the old expiry holds', async (t) => {
    const user = await session(api, 'tl_noauth')
    const other = await session(api, 'tl_noauth')
    const socket = await connectUntilTeardown(t, baseUrl, user.token)
    const exp = expOf(user.token)
    const refused: Array<[string, string]> = [
      ['another user\'s token', other.token],
      ['garbage', 'garbage'],
      ['three junk parts', 'a.b.c'],
      ['an expired token', resign(user.token, { iat: nowSeconds() - 120, exp: nowSeconds() - 60 })],
      ['a token without aud', signJwt(HS256, { sub: user.id, username: user.username, exp: nowSeconds() + 600 })],
      ['a token of another database', resign(user.token, { aud: 'chat:another-database', exp: nowSeconds() + 600 })],
      ['badly signed', signJwt(HS256, { ...decodeJwt(user.token).payload, exp: nowSeconds() + 600 }, { secret: 'another-secret-that-is-at-least-32-bytes!!' })],
      ['the refresh token', user.refreshToken]
    ]
    for (const [label, token] of refused) {
      const ref = `x-${label}`
      socket.send({ type: 'auth', token, ref })
      const reply = await socket.next((f) => f.ref === ref)
      t.match(reply, { type: 'error', code: 'unauthorized', ref }, label)
    }
    t.strictSame(await socket.closed, { code: 1008, reason: 'token expired' }, 'closed at the old expiry')
    t.ok(Date.now() >= exp * 1000 - 50 && Date.now() <= exp * 1000 + 1500, 'at the old expiry')
  })

  t.test('an auth frame with a token that expires sooner keeps the later expiry', async (t) => {
    const user = await session(api, 'tl_sooner')
    const long = resign(user.token, { exp: nowSeconds() + 600 })
    const socket = await connectUntilTeardown(t, baseUrl, long)
    const authed = await socket.request({ type: 'auth', token: user.token })
    t.match(authed, { type: 'authed', expiresAt: new Date(expOf(long) * 1000).toISOString() }, 'authed with the later, unchanged expiry')
    t.equal(await nextOrNull(socket, () => true, 3000), null, 'nothing arrives, no close, past the short token\'s expiry')
    t.equal(socket.ws.readyState, socket.ws.OPEN, 'still open')
  })
})

t.test('the database unreachable while a token is checked: 503 unavailable, not 401', { skip: skipPostgres }, async (t) => {
  const { url, drop } = await postgres!.provision()
  t.teardown(drop)
  const { proxy, url: proxied } = await proxyUrl(url!, 5432)
  t.teardown(async () => await proxy.close())
  const { api, baseUrl } = await startTestServer(t, { name: 'postgres', provision: async () => ({ url: proxied, drop: async () => {} }) })
  const user = await session(api, 'tl_down')
  const socket: ConnectedSocket = await connectUntilTeardown(t, baseUrl, user.token)
  proxy.cut()
  t.teardown(() => { proxy.restore() })
  const upgrade = await refusedUpgrade(baseUrl, { token: user.token })
  t.equal(upgrade.status, 503, 'upgrade: 503')
  t.equal(upgrade.body?.error, 'unavailable', 'upgrade: {error: unavailable}')
  assertError(t, await me(api, user.token), 503, 'unavailable', 'GET /auth/me')
  const reply = await socket.request({ type: 'auth', token: user.token }, 10_000)
  t.match(reply, { type: 'error', code: 'unavailable' }, 'auth frame: unavailable')
  t.equal((await refusedUpgrade(baseUrl, { token: 'garbage' })).status, 401, 'a bad token is still 401: it never reaches the database')
  proxy.restore()
  let status = 0
  for (const deadline = Date.now() + 10_000; Date.now() < deadline && status !== 200; await delay(250)) status = (await me(api, user.token)).status
  t.equal(status, 200, 'back once the database is')
})

/** Holds the answers of the socket upgrades' user lookups (`select id from users where id in (…)`) until released. */
interface LookupGate {
  readonly open: OpenDatabase
  /** The lookups run so far, each with the ids it asked for. */
  readonly lookups: string[][]
  hold (): void
  release (): void
}

function gatedLookups (): LookupGate {
  const held = new WeakMap<object, string[]>()
  const lookups: string[][] = []
  let gate: Promise<void> | null = null
  let openGate: () => void = () => {}
  // The upgrade's lookup is the one select on users filtered with `in`; REST's is by `=`.
  const lookupIds = (node: RootOperationNode): string[] | null => {
    if (node.kind !== 'SelectQueryNode') return null
    const text = JSON.stringify(node, (_key, value: unknown) => typeof value === 'bigint' ? String(value) : value)
    if (!text.includes('"name":"users"') || !text.includes('"operator":"in"')) return null
    const list = /"kind":"PrimitiveValueListNode","values":(\[[^\]]*\])/.exec(text)?.[1]
    return list === undefined ? [] : JSON.parse(list) as string[]
  }
  const plugin: KyselyPlugin = {
    transformQuery (args: PluginTransformQueryArgs): RootOperationNode {
      const ids = lookupIds(args.node)
      if (ids !== null) {
        lookups.push(ids)
        held.set(args.queryId, ids)
      }
      return args.node
    },
    async transformResult (args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
      if (held.has(args.queryId) && gate !== null) await gate
      return args.result
    }
  }
  return {
    lookups,
    open: async (options) => {
      const handle = await createDatabase(options)
      return { ...handle, db: handle.db.withPlugin(plugin) }
    },
    hold () {
      gate = new Promise((resolve) => { openGate = resolve })
    },
    release () {
      gate = null
      openGate()
    }
  }
}

/** Sends a WebSocket upgrade request for `token` over a raw TCP socket and resolves once it is sent; the socket is returned to be dropped. */
async function rawUpgrade (baseUrl: string, token: string): Promise<ReturnType<typeof tcpConnect>> {
  const { port } = new URL(baseUrl)
  const socket = tcpConnect(Number(port), '127.0.0.1')
  socket.on('error', () => {})
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  socket.write(`GET /ws?token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
  return socket
}

eachBackend(t, async (t, backend) => {
  const gate = gatedLookups()
  const { api, baseUrl } = await startTestServer(t, backend, { openDatabase: gate.open })
  t.teardown(() => { gate.release() })
  const users = await Promise.all(Array.from({ length: 6 }, async () => await session(api, 'tl_batch')))

  t.test('upgrades waiting for the database share lookups; one dropped meanwhile is not touched', async (t) => {
    gate.hold()
    const before = gate.lookups.length
    // The first upgrade's lookup is held; the ones arriving meanwhile queue behind it.
    const dropped = await rawUpgrade(baseUrl, users[0]!.token)
    await waitUntil(() => gate.lookups.length > before, 5000, 'the first lookup to start')
    const rest = users.slice(1).map(async (u) => await connectUntilTeardown(t, baseUrl, u.token))
    await delay(300)
    dropped.destroy()
    await delay(100)
    gate.release()
    const sockets = await Promise.all(rest)
    t.strictSame(sockets.map((s) => s.welcome.user?.id), users.slice(1).map((u) => u.id), 'every waiting upgrade completed')
    const lookups = gate.lookups.slice(before)
    t.equal(lookups.length, 2, `two lookups for six upgrades: the held one, then one for all that came meanwhile (${JSON.stringify(lookups)})`)
    t.strictSame([...new Set(lookups[1])].sort(), users.slice(1).map((u) => u.id).sort(), 'the second asked for the five together')
    t.equal((await api.request('GET', '/health')).status, 200, 'the server is fine after the dropped upgrade')
    t.equal((await connectUntilTeardown(t, baseUrl, users[0]!.token)).welcome.user?.id, users[0]!.id, 'and the dropped user can connect again')
  })
})
