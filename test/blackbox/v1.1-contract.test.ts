// Black-box tests of the v1.1 additions to the public contract (/work/shared/API.md, "Changes"):
// refresh tokens (/auth/refresh, /auth/logout, REFRESH_TTL), /auth/me, GET /users?username=,
// GET /rooms/:id/members, POST /rooms/:id/messages, read positions (Room.readSeq / unread,
// PUT /rooms/:id/read, GET /rooms/:id/receipts, the `read` frame, `receipt`, joined.readSeq, the
// author's own move), the socket token lifecycle (welcome.expiresAt, the `auth` frame, JWT_TTL),
// tokens bound to their database and user, and NUL / lone surrogates in the new text fields.
//
// Everything asserted comes from API.md, through HTTP and WebSocket only: nothing is read from the
// server's source. Each check is named after the API.md line it tests. API.md allows added fields,
// so bodies and frames are compared on the fields it names (and exact key sets where API.md gives
// the whole shape of something small, like `{user, expiresAt}` or a member entry).
//
// Not covered here: the exclusive port (tested elsewhere), /metrics, /docs, /client.js and `/`.
import t, { type Test } from 'tap'
import { assertError } from '../helpers/assertions.js'
import { checkErrorFrame, connectUntilTeardown, delay, pickFields, uniqueRoomId } from '../helpers/chat.js'
import type { ApiClient, ApiResponse } from '../helpers/http.js'
import { eachBackend, startTestServer } from '../helpers/server.js'
import { drainUntilPong, nextOrNull, refusedUpgrade, type ConnectedSocket, type Frame, type TestSocket, type TokenVia } from '../helpers/socket.js'
import { decodeJwt, signJwt } from '../helpers/tokens.js'

const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/
const PASSWORD = 'correct-horse-battery'
const VIAS: readonly TokenVia[] = ['protocol', 'header', 'query']
const ROOM_KEYS = ['id', 'title', 'private', 'createdBy', 'createdAt', 'lastSeq', 'readSeq', 'unread'] as const
const MESSAGE_KEYS = ['id', 'room', 'seq', 'userId', 'username', 'body', 'clientMsgId', 'createdAt'] as const
const LOGIN_KEYS = ['token', 'tokenType', 'expiresIn', 'refreshToken', 'refreshExpiresIn', 'user'] as const
const OTHER_SECRET = 'another-secret-that-is-at-least-32-bytes-long'

/** A registered user with the tokens of one login. */
interface Acct {
  readonly id: string
  readonly username: string
  readonly token: string
  readonly refreshToken: string
}

let names = 0
/** A username unique to this process (3-32 of [A-Za-z0-9_.-]). */
function uname (prefix: string): string {
  return `${prefix}_${process.pid}_${++names}`.slice(0, 32)
}

function roomId (label: string): string {
  return uniqueRoomId('v11', label)
}

function path (room: string, rest = ''): string {
  return `/rooms/${encodeURIComponent(room)}${rest}`
}

async function register (api: ApiClient, username: string): Promise<string> {
  const res = await api.request('POST', '/auth/register', { json: { username, password: PASSWORD } })
  if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${res.text}`)
  return String(res.body.id)
}

async function login (api: ApiClient, username: string): Promise<ApiResponse> {
  return await api.request('POST', '/auth/login', { json: { username, password: PASSWORD } })
}

async function loginAcct (api: ApiClient, id: string, username: string): Promise<Acct> {
  const res = await login(api, username)
  if (res.status !== 200) throw new Error(`login ${username}: ${res.status} ${res.text}`)
  return { id, username, token: res.body.token, refreshToken: res.body.refreshToken }
}

async function newAcct (api: ApiClient, prefix: string): Promise<Acct> {
  const username = uname(prefix)
  return await loginAcct(api, await register(api, username), username)
}

async function refresh (api: ApiClient, refreshToken: unknown): Promise<ApiResponse> {
  return await api.request('POST', '/auth/refresh', { json: { refreshToken } })
}

function isoNear (value: unknown, ms: number, tolerance = 1000): boolean {
  return typeof value === 'string' && ISO_8601.test(value) && Math.abs(Date.parse(value) - ms) <= tolerance
}

function expMs (token: string): number {
  return (decodeJwt(token).payload.exp as number) * 1000
}

/** Asserts a login-shaped body: {token, tokenType: "Bearer", expiresIn, refreshToken, refreshExpiresIn, user}. */
function checkLoginShape (t: Test, res: ApiResponse, user: { id: string, username: string }, ttl: { expiresIn: number, refreshExpiresIn: number }, label: string): void {
  t.equal(res.status, 200, `${label}: 200`)
  const b = res.body ?? {}
  t.ok(LOGIN_KEYS.every((k) => k in b), `${label}: has ${LOGIN_KEYS.join(', ')} (got ${Object.keys(b).join(', ')})`)
  t.ok(typeof b.token === 'string' && b.token !== '', `${label}: token is a non-empty string`)
  t.equal(b.tokenType, 'Bearer', `${label}: tokenType Bearer`)
  t.equal(b.expiresIn, ttl.expiresIn, `${label}: expiresIn is JWT_TTL (${ttl.expiresIn})`)
  t.ok(typeof b.refreshToken === 'string' && b.refreshToken !== '', `${label}: refreshToken is a non-empty string`)
  t.not(b.refreshToken, b.token, `${label}: the refresh token is not the access token`)
  t.equal(b.refreshExpiresIn, ttl.refreshExpiresIn, `${label}: refreshExpiresIn is REFRESH_TTL (${ttl.refreshExpiresIn})`)
  t.strictSame(b.user, { id: user.id, username: user.username }, `${label}: user {id, username}`)
}

/** Asserts a Room has every field API.md names, with `unread = lastSeq - readSeq` and the expected values given. */
function checkRoom (t: Test, room: any, expected: Record<string, unknown>, label: string): void {
  t.ok(room !== null && typeof room === 'object' && ROOM_KEYS.every((k) => k in room), `${label}: a Room with ${ROOM_KEYS.join(', ')} (got ${Object.keys(room ?? {}).join(', ')})`)
  t.strictSame(pickFields(room, Object.keys(expected)), expected, `${label}: ${JSON.stringify(expected)}`)
  t.ok(typeof room?.readSeq === 'number' && typeof room?.unread === 'number' && room.unread === room.lastSeq - room.readSeq,
    `${label}: unread (${String(room?.unread)}) = lastSeq (${String(room?.lastSeq)}) - readSeq (${String(room?.readSeq)})`)
}

/** Asserts a Message (REST body or a `message` frame minus its type) as API.md shapes it. */
function checkMessage (t: Test, m: any, expected: { room: string, userId: string, username: string, body: string, clientMsgId: string | null }, label: string): void {
  t.strictSame(pickFields(m, ['room', 'userId', 'username', 'body', 'clientMsgId']), expected, `${label}: room, userId, username, body, clientMsgId`)
  t.ok(typeof m?.id === 'string' && m.id !== '', `${label}: id is a non-empty string (${String(m?.id)})`)
  t.ok(typeof m?.seq === 'number' && Number.isInteger(m.seq) && m.seq >= 1, `${label}: seq is a positive integer (${String(m?.seq)})`)
  t.ok(typeof m?.createdAt === 'string' && ISO_8601.test(m.createdAt) && !Number.isNaN(Date.parse(m.createdAt)), `${label}: createdAt is ISO-8601 (${String(m?.createdAt)})`)
}

/** Whether an upgrade with this token is refused, and how: the HTTP status, 'opened', or 'error: …'. */
async function upgradeOutcome (baseUrl: string, token: string, via: TokenVia): Promise<number | string> {
  try {
    return (await refusedUpgrade(baseUrl, { token, via })).status
  } catch (error) {
    return (error as Error).message === 'the upgrade was accepted' ? 'opened' : `error: ${(error as Error).message}`
  }
}

const receipts = (frames: Frame[]): Frame[] => frames.filter((f) => f.type === 'receipt')

eachBackend(t, async (t, backend) => {
  // A: the main server (defaults for JWT_TTL and REFRESH_TTL). B: short lifetimes, its own database,
  // the same JWT_SECRET (startTestServer gives every server TEST_SECRET).
  const [A, B] = await Promise.all([
    startTestServer(t, backend, { env: { WS_RATE: '1000', WS_BURST: '1000' } }),
    startTestServer(t, backend, { env: { REFRESH_TTL: '2', JWT_TTL: '3' } })
  ])
  const api = A.api
  const baseUrl = A.baseUrl

  // The same username is the first user on both databases, so the two tokens carry the same
  // user id and name: only the database they came from tells them apart.
  const twinName = uname('twin')
  const twinIdA = await register(api, twinName)
  const twinIdB = await register(B.api, twinName)

  const alice = await newAcct(api, 'alice')
  const bob = await newAcct(api, 'bob')
  const carol = await newAcct(api, 'carol')
  const dave = await newAcct(api, 'dave')
  // Enough users that ids cross from one digit to two (if the server numbers them 1, 2, 3…).
  const fillers: Array<{ id: string, username: string }> = []
  for (let i = 0; i < 10; i++) {
    const username = uname('fill')
    fillers.push({ id: await register(api, username), username })
  }
  const everyone = [{ id: twinIdA, username: twinName }, alice, bob, carol, dave, ...fillers]

  const open = async (t: Test, user: { token: string }, server = baseUrl): Promise<ConnectedSocket> => await connectUntilTeardown(t, server, user.token)

  const join = async (t: Test, s: TestSocket, room: string): Promise<Frame> => {
    const reply = await s.request({ type: 'join', room })
    t.equal(reply.type, 'joined', `join ${room}: joined (${reply.type === 'error' ? String(reply.code) : 'ok'})`)
    return reply
  }

  const createRoom = async (t: Test, label: string, owner: Acct, members: Acct[] = [], isPrivate = false): Promise<string> => {
    const id = roomId(label)
    const res = await api.request('POST', '/rooms', { token: owner.token, json: { id, private: isPrivate } })
    t.equal(res.status, 201, `POST /rooms ${id}: 201`)
    for (const u of members) {
      const added = await api.request('POST', path(id, '/members'), { token: isPrivate ? owner.token : u.token, json: { userId: u.id } })
      t.equal(added.status, 204, `${u.username} added to ${id}`)
    }
    return id
  }

  const post = async (user: Acct, room: string, json: unknown): Promise<ApiResponse> =>
    await api.request('POST', path(room, '/messages'), { token: user.token, json })

  const historyOf = async (room: string, token = alice.token): Promise<any[]> => {
    const res = await api.request('GET', path(room, '/messages?limit=100'), { token })
    if (res.status !== 200) throw new Error(`history ${room}: ${res.status} ${res.text}`)
    return res.body.messages
  }

  const getRoom = async (user: Acct, room: string): Promise<any> => {
    const res = await api.request('GET', path(room), { token: user.token })
    if (res.status !== 200) throw new Error(`GET room ${room}: ${res.status} ${res.text}`)
    return res.body
  }

  const putRead = async (user: Acct, room: string, seq: unknown): Promise<ApiResponse> =>
    await api.request('PUT', path(room, '/read'), { token: user.token, json: { seq } })

  // ---------------------------------------------------------------------------------------------
  // Refresh tokens, logout, /auth/me

  t.test('POST /auth/login: 200 {token, tokenType, expiresIn, refreshToken, refreshExpiresIn, user}', async (t) => {
    const res = await login(api, alice.username)
    checkLoginShape(t, res, alice, { expiresIn: 3600, refreshExpiresIn: 2592000 }, 'login')
    const again = await login(api, alice.username)
    t.not(again.body?.refreshToken, res.body?.refreshToken, 'each login has its own refresh token')
    const short = await login(B.api, twinName)
    checkLoginShape(t, short, { id: twinIdB, username: twinName }, { expiresIn: 3, refreshExpiresIn: 2 }, 'login with JWT_TTL=3, REFRESH_TTL=2')
  })

  t.test('POST /auth/refresh: 200 shaped like login, a new token and a new refreshToken; no access token needed', async (t) => {
    const first = await loginAcct(api, bob.id, bob.username)
    const res = await api.request('POST', '/auth/refresh', { json: { refreshToken: first.refreshToken } }) // no Authorization header
    checkLoginShape(t, res, bob, { expiresIn: 3600, refreshExpiresIn: 2592000 }, 'refresh')
    t.not(res.body?.refreshToken, first.refreshToken, 'a new refresh token')
    const me = await api.request('GET', '/auth/me', { token: res.body?.token })
    t.equal(me.status, 200, 'the new token is accepted by GET /auth/me')
    t.strictSame(me.body?.user, { id: bob.id, username: bob.username }, 'the new token is the same user\'s')
    const s = await open(t, { token: res.body?.token })
    t.strictSame(s.welcome.user, { id: bob.id, username: bob.username }, 'the new token opens a socket for the same user')
    const chained = await refresh(api, res.body?.refreshToken)
    checkLoginShape(t, chained, bob, { expiresIn: 3600, refreshExpiresIn: 2592000 }, 'the new refresh token refreshes in turn')
  })

  t.test('POST /auth/refresh: the one sent is spent', async (t) => {
    const first = await loginAcct(api, carol.id, carol.username)
    const r1 = await refresh(api, first.refreshToken)
    t.equal(r1.status, 200, 'first use: 200')
    assertError(t, await refresh(api, first.refreshToken), 401, 'unauthorized', 'the same refresh token again')
  })

  t.test('POST /auth/refresh: a spent refresh token sent again revokes every refresh token of that login (401)', async (t) => {
    const first = await loginAcct(api, dave.id, dave.username)
    const other = await loginAcct(api, dave.id, dave.username) // another login of the same user
    const r1 = await refresh(api, first.refreshToken)
    t.equal(r1.status, 200, 'R0 → R1')
    const r2 = await refresh(api, r1.body?.refreshToken)
    t.equal(r2.status, 200, 'R1 → R2')
    assertError(t, await refresh(api, first.refreshToken), 401, 'unauthorized', 'spent R0 sent again')
    assertError(t, await refresh(api, r2.body?.refreshToken), 401, 'unauthorized', 'the newest refresh token of that login (R2) after the reuse')
    assertError(t, await refresh(api, r1.body?.refreshToken), 401, 'unauthorized', 'R1 (spent) after the reuse')
    const o = await refresh(api, other.refreshToken)
    t.equal(o.status, 200, 'another login of the same user keeps its refresh token (only that login is revoked)')
  })

  t.test('POST /auth/refresh: bad bodies 400, unknown refresh token 401', async (t) => {
    assertError(t, await api.request('POST', '/auth/refresh', { json: {} }), 400, 'bad_request', 'no refreshToken')
    assertError(t, await refresh(api, 12345), 400, 'bad_request', 'refreshToken a number')
    assertError(t, await api.request('POST', '/auth/refresh', { raw: '{"refreshToken":', contentType: 'application/json' }), 400, 'bad_request', 'not JSON')
    assertError(t, await refresh(api, 'no-such-refresh-token'), 401, 'unauthorized', 'an unknown refresh token')
    assertError(t, await refresh(api, alice.token), 401, 'unauthorized', 'an access token sent as refresh token')
    const fresh = await loginAcct(api, alice.id, alice.username)
    assertError(t, await refresh(api, `${fresh.refreshToken}\u0000`), 400, 'bad_request', 'NUL in refreshToken')
    assertError(t, await refresh(api, `${fresh.refreshToken}\ud800`), 400, 'bad_request', 'lone surrogate in refreshToken')
  })

  t.test('POST /auth/logout: 204 (also for an unknown one); every refresh token of that login is revoked', async (t) => {
    const first = await loginAcct(api, bob.id, bob.username)
    const other = await loginAcct(api, bob.id, bob.username)
    const r1 = await refresh(api, first.refreshToken)
    t.equal(r1.status, 200, 'R0 → R1')
    const out = await api.request('POST', '/auth/logout', { json: { refreshToken: r1.body?.refreshToken } })
    t.equal(out.status, 204, 'logout: 204')
    t.equal(out.text, '', '204 has no body')
    assertError(t, await refresh(api, r1.body?.refreshToken), 401, 'unauthorized', 'refresh with the logged-out token')
    t.equal((await api.request('POST', '/auth/logout', { json: { refreshToken: r1.body?.refreshToken } })).status, 204, 'logout again with it: 204')
    t.equal((await api.request('POST', '/auth/logout', { json: { refreshToken: 'no-such-refresh-token' } })).status, 204, 'logout with an unknown refresh token: 204')
    t.equal((await refresh(api, other.refreshToken)).status, 200, 'another login of the same user is not logged out')

    // Logging out with an older (spent) token of a login revokes that login's newest one as well.
    const second = await loginAcct(api, bob.id, bob.username)
    const s1 = await refresh(api, second.refreshToken)
    t.equal(s1.status, 200, 'S0 → S1')
    t.equal((await api.request('POST', '/auth/logout', { json: { refreshToken: s1.body?.refreshToken } })).status, 204, 'logout with S1')
    assertError(t, await refresh(api, s1.body?.refreshToken), 401, 'unauthorized', 'S1 after logout')
    assertError(t, await refresh(api, second.refreshToken), 401, 'unauthorized', 'S0 (spent) after logout')

    assertError(t, await api.request('POST', '/auth/logout', { json: {} }), 400, 'bad_request', 'logout without refreshToken')
    assertError(t, await api.request('POST', '/auth/logout', { json: { refreshToken: 'a\u0000b' } }), 400, 'bad_request', 'logout: NUL in refreshToken')
    assertError(t, await api.request('POST', '/auth/logout', { json: { refreshToken: 'a\udc00b' } }), 400, 'bad_request', 'logout: lone surrogate in refreshToken')
  })

  t.test('REFRESH_TTL: each new refresh token lives REFRESH_TTL seconds', async (t) => {
    const r0 = await login(B.api, twinName)
    t.equal(r0.body?.refreshExpiresIn, 2, 'login: refreshExpiresIn 2')
    const unused = await login(B.api, twinName)
    const t0 = Date.now()
    await delay(1200)
    const r1 = await refresh(B.api, r0.body?.refreshToken)
    t.equal(r1.status, 200, 'refresh within REFRESH_TTL: 200')
    t.equal(r1.body?.refreshExpiresIn, 2, 'the new refresh token: refreshExpiresIn 2')
    const t1 = Date.now()
    await delay(1000)
    // Now past the login's first REFRESH_TTL, but R1 is only ~1 s old: it lives its own REFRESH_TTL.
    t.ok(Date.now() - t0 > 2000, 'precondition: more than REFRESH_TTL since the login')
    const r2 = await refresh(B.api, r1.body?.refreshToken)
    t.equal(r2.status, 200, 'a refresh token younger than REFRESH_TTL, of a login older than REFRESH_TTL: 200 (each new one lives REFRESH_TTL)')
    const t2 = Date.now()
    await delay(2600)
    t.ok(Date.now() - Math.max(t1, t2) > 2000, 'waited past REFRESH_TTL')
    assertError(t, await refresh(B.api, r2.body?.refreshToken), 401, 'unauthorized', 'a refresh token older than REFRESH_TTL')
    assertError(t, await refresh(B.api, unused.body?.refreshToken), 401, 'unauthorized', 'an unused login\'s refresh token older than REFRESH_TTL')
  })

  t.test('POST /auth/refresh: the same refresh token sent concurrently is spent once', async (t) => {
    const first = await loginAcct(api, carol.id, carol.username)
    const results = await Promise.all(Array.from({ length: 6 }, async () => await refresh(api, first.refreshToken)))
    const statuses = results.map((r) => r.status)
    t.equal(statuses.filter((s) => s === 200).length, 1, `exactly one 200 (${statuses.join(',')})`)
    t.equal(statuses.filter((s) => s === 401).length, 5, 'the others 401')
    const winner = results.find((r) => r.status === 200)
    if (winner !== undefined) {
      assertError(t, await refresh(api, winner.body?.refreshToken), 401, 'unauthorized', 'the winner\'s new refresh token after the reuse (the whole login is revoked)')
    }
  })

  t.test('GET /auth/me: 200 {user: {id, username}, expiresAt} for a valid token, else 401', async (t) => {
    const before = Date.now()
    const res = await login(api, carol.username)
    const token = res.body?.token as string
    const me = await api.request('GET', '/auth/me', { token })
    t.equal(me.status, 200, '200')
    t.strictSame(Object.keys(me.body ?? {}).sort(), ['expiresAt', 'user'], 'body is {user, expiresAt}')
    t.strictSame(me.body?.user, { id: carol.id, username: carol.username }, 'user {id, username}')
    t.match(me.body?.expiresAt, ISO_8601, 'expiresAt is ISO-8601')
    t.ok(isoNear(me.body?.expiresAt, expMs(token)), `expiresAt (${String(me.body?.expiresAt)}) is the token's exp (${new Date(expMs(token)).toISOString()})`)
    t.ok(isoNear(me.body?.expiresAt, before + 3600 * 1000, 2000), 'expiresAt is about JWT_TTL after the login')

    const shortLogin = await login(B.api, twinName)
    const shortMe = await B.api.request('GET', '/auth/me', { token: shortLogin.body?.token })
    t.equal(shortMe.status, 200, 'JWT_TTL=3 server: 200')
    t.ok(isoNear(shortMe.body?.expiresAt, Date.now() + 3000, 1500), `JWT_TTL=3 server: expiresAt about 3 s ahead (${String(shortMe.body?.expiresAt)})`)

    const { header, payload } = decodeJwt(token)
    const now = Math.floor(Date.now() / 1000)
    assertError(t, await api.request('GET', '/auth/me'), 401, 'unauthorized', 'no token')
    assertError(t, await api.request('GET', '/auth/me', { token: 'not-a-jwt' }), 401, 'unauthorized', 'a malformed token')
    assertError(t, await api.request('GET', '/auth/me', { token: signJwt(header, payload, { secret: OTHER_SECRET }) }), 401, 'unauthorized', 'a badly signed token')
    assertError(t, await api.request('GET', '/auth/me', { token: signJwt(header, { ...payload, exp: now - 60 }) }), 401, 'unauthorized', 'an expired token')
    assertError(t, await api.request('GET', '/auth/me', { token: res.body?.refreshToken }), 401, 'unauthorized', 'a refresh token used as access token')
    assertError(t, await api.request('GET', '/auth/me', { headers: { authorization: token } }), 401, 'unauthorized', 'Authorization without the Bearer scheme')
  })

  // ---------------------------------------------------------------------------------------------
  // Users and members

  t.test('GET /users?username=: exact, any case; 200 {users: [{id, username}]}, zero or one user', async (t) => {
    const q = async (name: string): Promise<ApiResponse> => await api.request('GET', `/users?username=${encodeURIComponent(name)}`, { token: bob.token })
    const exact = await q(alice.username)
    t.equal(exact.status, 200, 'exact: 200')
    t.strictSame(exact.body, { users: [{ id: alice.id, username: alice.username }] }, 'exact: the one user')
    t.strictSame((await q(alice.username.toUpperCase())).body, { users: [{ id: alice.id, username: alice.username }] }, 'upper case: the same user, with its stored spelling')
    const mixed = alice.username.split('').map((c, i) => i % 2 === 0 ? c.toUpperCase() : c.toLowerCase()).join('')
    t.strictSame((await q(mixed)).body, { users: [{ id: alice.id, username: alice.username }] }, 'mixed case: the same user')
    const prefix = await q(alice.username.slice(0, -1))
    t.equal(prefix.status, 200, 'a prefix: 200')
    t.strictSame(prefix.body, { users: [] }, 'a prefix: no user (exact match only)')
    t.strictSame((await q(`${alice.username}x`)).body, { users: [] }, 'a longer name: no user')
    t.strictSame((await q('nobody_by_this_name')).body, { users: [] }, 'unknown: no user')
    t.strictSame((await q('alice%')).body, { users: [] }, 'a LIKE wildcard is not a wildcard')
    t.strictSame((await q('_lice')).body, { users: [] }, 'an underscore is not a wildcard')
    assertError(t, await api.request('GET', `/users?username=${encodeURIComponent('ab\u0000cd')}`, { token: bob.token }), 400, 'bad_request', 'NUL in username')
  })

  t.test('GET /rooms/:id/members: 200 {room, members: [{userId, username, joinedAt}], hasMore} ordered by user id as a number', async (t) => {
    const room = await createRoom(t, 'members', alice)
    for (const u of everyone) {
      if (u.id === alice.id) continue
      const added = await api.request('POST', path(room, '/members'), { token: alice.token, json: { userId: u.id } })
      t.equal(added.status, 204, `add ${u.username}`)
    }
    const ids = everyone.map((u) => u.id)
    t.ok(ids.some((id) => id.length === 1) && ids.some((id) => id.length > 1), `precondition: user ids span 1 and 2+ digits (${ids.join(',')})`, { diagnostic: false })
    const expected = [...everyone].sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : BigInt(a.id) > BigInt(b.id) ? 1 : 0)).map((u) => ({ userId: u.id, username: u.username }))

    const res = await api.request('GET', path(room, '/members'), { token: bob.token })
    t.equal(res.status, 200, '200')
    t.equal(res.body?.room, room, 'room is the room id')
    t.equal(res.body?.hasMore, false, 'default limit 100 takes all: hasMore false')
    const members: any[] = res.body?.members ?? []
    t.strictSame(members.map((m) => ({ userId: m.userId, username: m.username })), expected, 'every member, ordered by user id as a number')
    t.ok(members.every((m) => Object.keys(m).sort().join(',') === 'joinedAt,userId,username'), 'each member is {userId, username, joinedAt}')
    t.ok(members.every((m) => typeof m.userId === 'string'), 'userId is a string')
    t.ok(members.every((m) => typeof m.joinedAt === 'string' && ISO_8601.test(m.joinedAt)), 'joinedAt is ISO-8601')

    // Pages of 4 with `after`.
    const paged: any[] = []
    const flags: boolean[] = []
    let after: string | undefined
    for (let i = 0; i < 10; i++) {
      const page = await api.request('GET', path(room, `/members?limit=4${after === undefined ? '' : `&after=${after}`}`), { token: bob.token })
      t.equal(page.status, 200, `page ${i + 1}: 200`)
      const list: any[] = page.body?.members ?? []
      t.ok(list.length <= 4, `page ${i + 1}: at most limit`)
      paged.push(...list.map((m) => ({ userId: m.userId, username: m.username })))
      flags.push(page.body?.hasMore)
      if (page.body?.hasMore !== true || list.length === 0) break
      after = list[list.length - 1].userId
    }
    t.strictSame(paged, expected, 'paging with limit=4 and after=<last userId> yields every member once, in order')
    t.strictSame(flags, expected.map((_, i) => i).filter((i) => i % 4 === 0).map((i) => i + 4 < expected.length), 'hasMore is true on every page but the last')

    const n = expected.length
    const whole = await api.request('GET', path(room, `/members?limit=${n}`), { token: bob.token })
    t.equal(whole.body?.members?.length, n, `limit = member count (${n}): all of them`)
    t.equal(whole.body?.hasMore, false, `limit = member count: hasMore false (nothing more exists)`)
    const short = await api.request('GET', path(room, `/members?limit=${n - 1}`), { token: bob.token })
    t.equal(short.body?.hasMore, true, 'limit = member count - 1: hasMore true')

    // `after` compares ids as numbers: after the largest one-digit id comes the smallest two-digit one.
    const oneDigit = expected.filter((m) => m.userId.length === 1)
    const lastOneDigit = oneDigit[oneDigit.length - 1]
    if (lastOneDigit !== undefined && oneDigit.length < expected.length) {
      const rest = await api.request('GET', path(room, `/members?after=${lastOneDigit.userId}`), { token: bob.token })
      t.strictSame((rest.body?.members ?? []).map((m: any) => ({ userId: m.userId, username: m.username })), expected.slice(oneDigit.length),
        `after=${lastOneDigit.userId}: the members with larger ids as numbers (two-digit ids included)`)
    }
    const last = expected[expected.length - 1]!
    const none = await api.request('GET', path(room, `/members?after=${last.userId}`), { token: bob.token })
    t.strictSame(pickFields(none.body, ['room', 'members', 'hasMore']), { room, members: [], hasMore: false }, 'after the largest id: no members, hasMore false')
  })

  t.test('GET /rooms/:id/members: limit 1-500 (default 100)', async (t) => {
    const room = await createRoom(t, 'memberlimit', alice, [bob, carol])
    const one = await api.request('GET', path(room, '/members?limit=1'), { token: alice.token })
    t.equal(one.status, 200, 'limit=1: 200')
    t.equal(one.body?.members?.length, 1, 'limit=1: one member')
    t.equal(one.body?.hasMore, true, 'limit=1 of 3: hasMore')
    t.equal((await api.request('GET', path(room, '/members?limit=500'), { token: alice.token })).status, 200, 'limit=500: 200')
    for (const bad of ['0', '501', '-1', 'abc', '1.5']) {
      assertError(t, await api.request('GET', path(room, `/members?limit=${bad}`), { token: alice.token }), 400, 'bad_request', `limit=${bad}`)
    }
    assertError(t, await api.request('GET', path(room, '/members?after=abc'), { token: alice.token }), 400, 'bad_request', 'after=abc (not a user id)')
  })

  t.test('GET /rooms/:id/members: default limit 100', async (t) => {
    const room = await createRoom(t, 'memberdefault', alice)
    const extra: Array<{ id: string, username: string }> = []
    for (let i = 0; i < 90; i++) {
      const username = uname('many')
      extra.push({ id: await register(api, username), username })
    }
    const all = [...everyone, ...extra]
    for (const u of all) {
      if (u.id === alice.id) continue
      const added = await api.request('POST', path(room, '/members'), { token: alice.token, json: { userId: u.id } })
      if (added.status !== 204) t.fail(`add ${u.username}: ${added.status}`)
    }
    t.ok(all.length > 100, `precondition: more than 100 members (${all.length})`)
    const sorted = all.map((u) => u.id).sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0))
    const res = await api.request('GET', path(room, '/members'), { token: bob.token })
    t.equal(res.status, 200, '200')
    t.equal(res.body?.members?.length, 100, 'no limit: 100 members')
    t.equal(res.body?.hasMore, true, 'no limit, more than 100: hasMore')
    t.strictSame((res.body?.members ?? []).map((m: any) => m.userId), sorted.slice(0, 100), 'the first 100 by user id as a number')
    const rest = await api.request('GET', path(room, `/members?after=${sorted[99] ?? ''}`), { token: bob.token })
    t.strictSame((rest.body?.members ?? []).map((m: any) => m.userId), sorted.slice(100), 'after the 100th: the rest (ids cross to three digits if numbered)')
    t.equal(rest.body?.hasMore, false, 'the rest: hasMore false')
    const big = await api.request('GET', path(room, '/members?limit=500'), { token: bob.token })
    t.equal(big.body?.members?.length, all.length, 'limit=500: all of them')
    t.equal(big.body?.hasMore, false, 'limit=500: hasMore false')
  })

  t.test('GET /rooms/:id/members: private room and not a member 403; unknown room 404', async (t) => {
    const priv = await createRoom(t, 'memberpriv', alice, [bob], true)
    t.equal((await api.request('GET', path(priv, '/members'), { token: bob.token })).status, 200, 'a member of the private room: 200')
    assertError(t, await api.request('GET', path(priv, '/members'), { token: carol.token }), 403, 'forbidden', 'private room, not a member')
    assertError(t, await api.request('GET', path(roomId('nosuch'), '/members'), { token: carol.token }), 404, 'not_found', 'unknown room')
    const pub = await createRoom(t, 'memberpub', alice)
    t.equal((await api.request('GET', path(pub, '/members'), { token: carol.token })).status, 200, 'a public room, not a member: 200')
    assertError(t, await api.request('GET', path(pub, '/members')), 401, 'unauthorized', 'no token')
  })

  // ---------------------------------------------------------------------------------------------
  // POST /rooms/:id/messages

  t.test('POST /rooms/:id/messages: 201 Message once stored, published to the room like a socket message; no join needed', async (t) => {
    const room = await createRoom(t, 'restsend', alice)
    const a = await open(t, alice)
    const b = await open(t, bob)
    await join(t, a, room)
    await join(t, b, room)
    // carol is not a member and has no socket: no join needed in a public room.
    const res = await post(carol, room, { body: 'hello over REST' })
    t.equal(res.status, 201, '201')
    checkMessage(t, res.body, { room, userId: carol.id, username: carol.username, body: 'hello over REST', clientMsgId: null }, 'response')
    t.ok(MESSAGE_KEYS.every((k) => k in (res.body ?? {})), 'the response has every Message field')
    t.equal(res.body?.seq, 1, 'the first message of the room: seq 1')
    for (const [label, s] of [['another user\'s joined socket', b], ['the creator\'s joined socket', a]] as const) {
      const ev = await nextOrNull(s, (f) => f.type === 'message' && f.room === room, 3000)
      t.strictSame(pickFields(ev ?? undefined, ['type', ...MESSAGE_KEYS]), { type: 'message', ...pickFields(res.body, MESSAGE_KEYS) }, `${label}: a message event, the same Message`)
    }
    const hist = await historyOf(room)
    t.strictSame(hist.map((m) => pickFields(m, MESSAGE_KEYS)), [pickFields(res.body, MESSAGE_KEYS)], 'history: exactly the Message returned')

    // The author's own joined socket gets it too: there is no sending socket to leave out.
    const c = await open(t, carol)
    await join(t, c, room)
    const own = await post(carol, room, { body: 'second', clientMsgId: 'own-1' })
    t.equal(own.status, 201, 'second post: 201')
    t.equal(own.body?.seq, 2, 'seq 2')
    t.equal(own.body?.clientMsgId, 'own-1', 'clientMsgId echoed')
    const mine = await nextOrNull(c, (f) => f.type === 'message' && f.room === room, 3000)
    t.equal(mine?.seq, 2, 'the author\'s joined socket gets the message event')
  })

  t.test('POST /rooms/:id/messages: the same clientMsgId from the same user again → 200 with the original Message, nothing stored or sent twice', async (t) => {
    const room = await createRoom(t, 'restdedupe', alice)
    const b = await open(t, bob)
    await join(t, b, room)
    const first = await post(alice, room, { body: 'once', clientMsgId: 'dup-1' })
    t.equal(first.status, 201, 'first: 201')
    const again = await post(alice, room, { body: 'once', clientMsgId: 'dup-1' })
    t.equal(again.status, 200, 'again: 200')
    t.strictSame(pickFields(again.body, MESSAGE_KEYS), pickFields(first.body, MESSAGE_KEYS), 'again: the original Message')
    const changed = await post(alice, room, { body: 'a different body', clientMsgId: 'dup-1' })
    t.equal(changed.status, 200, 'again with another body: 200')
    t.strictSame(pickFields(changed.body, MESSAGE_KEYS), pickFields(first.body, MESSAGE_KEYS), 'again with another body: still the original Message')
    const other = await post(carol, room, { body: 'carol', clientMsgId: 'dup-1' })
    t.equal(other.status, 201, 'the same clientMsgId from another user: 201, a new message')
    t.equal(other.body?.seq, 2, 'another user\'s: seq 2')
    const hist = await historyOf(room)
    t.strictSame(hist.map((m) => m.seq), [1, 2], 'stored once each')
    const frames = (await drainUntilPong(b)).filter((f) => f.type === 'message')
    t.strictSame(frames.map((f) => f.seq), [1, 2], 'the joined socket got each message once')

    // "as on the socket": a clientMsgId first used on the socket, then over REST.
    const a = await open(t, alice)
    await join(t, a, room)
    const ack = await a.request({ type: 'message', room, body: 'via socket', clientMsgId: 'dup-sock' })
    t.equal(ack.type, 'ack', 'socket message acked')
    const viaRest = await post(alice, room, { body: 'via socket', clientMsgId: 'dup-sock' })
    t.equal(viaRest.status, 200, 'the socket\'s clientMsgId again over REST: 200')
    t.strictSame(pickFields(viaRest.body, ['id', 'seq', 'createdAt', 'clientMsgId', 'body']), { id: ack.id, seq: ack.seq, createdAt: ack.createdAt, clientMsgId: 'dup-sock', body: 'via socket' },
      'over REST: the original Message of the socket send')
    t.strictSame((await historyOf(room)).map((m) => m.seq), [1, 2, 3], 'nothing stored twice')
  })

  t.test('POST /rooms/:id/messages: the same clientMsgId sent concurrently is stored once; every answer is the one Message', async (t) => {
    const room = await createRoom(t, 'restrace', alice)
    const b = await open(t, bob)
    await join(t, b, room)
    const results = await Promise.all(Array.from({ length: 6 }, async () => await post(alice, room, { body: 'racing', clientMsgId: 'race-1' })))
    const statuses = results.map((r) => r.status)
    t.equal(statuses.filter((s) => s === 201).length, 1, `one 201 (${statuses.join(',')})`)
    t.equal(statuses.filter((s) => s === 200).length, 5, 'the others 200')
    const ids = new Set(results.map((r) => r.body?.id))
    t.equal(ids.size, 1, 'every answer carries the same Message id')
    t.strictSame((await historyOf(room)).map((m) => m.clientMsgId), ['race-1'], 'stored once')
    t.strictSame((await drainUntilPong(b)).filter((f) => f.type === 'message').map((f) => f.seq), [1], 'sent once')
  })

  t.test('POST /rooms/:id/messages: clientMsgId is per room (the same one in another room is a new message)', async (t) => {
    const r1 = await createRoom(t, 'cidroom1', alice)
    const r2 = await createRoom(t, 'cidroom2', alice)
    const m1 = await post(alice, r1, { body: 'one', clientMsgId: 'per-room' })
    const m2 = await post(alice, r2, { body: 'two', clientMsgId: 'per-room' })
    t.equal(m1.status, 201, 'room 1: 201')
    t.equal(m2.status, 201, 'room 2, same clientMsgId: 201')
    t.strictSame(pickFields(m2.body, ['room', 'body', 'seq']), { room: r2, body: 'two', seq: 1 }, 'room 2 stored its own message')
  })

  t.test('POST /rooms/:id/messages: a private room takes membership (403); unknown room 404', async (t) => {
    const priv = await createRoom(t, 'restpriv', alice, [bob], true)
    t.equal((await post(bob, priv, { body: 'member' })).status, 201, 'a member of the private room (never joined on a socket): 201')
    assertError(t, await post(carol, priv, { body: 'intruder' }), 403, 'forbidden', 'private room, not a member')
    assertError(t, await post(carol, roomId('nosuch'), { body: 'x' }), 404, 'not_found', 'unknown room')
    t.strictSame((await historyOf(priv)).map((m) => m.body), ['member'], 'nothing stored by the refused one')
    assertError(t, await api.request('POST', path(priv, '/messages'), { json: { body: 'x' } }), 401, 'unauthorized', 'no token')
  })

  t.test('POST /rooms/:id/messages: {body, clientMsgId?} as on the socket; bad bodies 400; text comes back unchanged', async (t) => {
    const room = await createRoom(t, 'restbad', alice)
    const bad: Array<[string, unknown]> = [
      ['no body', {}],
      ['empty body', { body: '' }],
      ['body of 4001 chars', { body: 'x'.repeat(4001) }],
      ['body a number', { body: 42 }],
      ['body null', { body: null }],
      ['clientMsgId empty', { body: 'x', clientMsgId: '' }],
      ['clientMsgId of 65 chars', { body: 'x', clientMsgId: 'c'.repeat(65) }],
      ['clientMsgId a number', { body: 'x', clientMsgId: 7 }],
      ['NUL in body', { body: 'a\u0000b' }],
      ['lone high surrogate in body', { body: 'a\ud800b' }],
      ['lone low surrogate in body', { body: 'a\udc00' }],
      ['NUL in clientMsgId', { body: 'x', clientMsgId: 'c\u0000' }],
      ['lone surrogate in clientMsgId', { body: 'x', clientMsgId: '\ud83d' }],
      ['an array', ['x']]
    ]
    for (const [label, json] of bad) assertError(t, await post(alice, room, json), 400, 'bad_request', label)
    assertError(t, await api.request('POST', path(room, '/messages'), { token: alice.token, raw: '{"body":', contentType: 'application/json' }), 400, 'bad_request', 'not JSON')
    t.strictSame(await historyOf(room), [], 'nothing stored')

    const long = await post(alice, room, { body: 'y'.repeat(4000), clientMsgId: 'k'.repeat(64) })
    t.equal(long.status, 201, 'body of 4000 chars and clientMsgId of 64: 201')
    const text = 'emoji 😀 pair, accents é, CJK 漢字, escapes \\ " \t newline\n'
    const uni = await post(alice, room, { body: text })
    t.equal(uni.status, 201, 'unicode with valid surrogate pairs: 201')
    t.equal(uni.body?.body, text, 'the response body is unchanged')
    t.equal((await historyOf(room))[1]?.body, text, 'history has it unchanged')
  })

  // ---------------------------------------------------------------------------------------------
  // Read positions

  t.test('Room.readSeq and unread (= lastSeq - readSeq) on POST /rooms, GET /rooms and GET /rooms/:id', async (t) => {
    const id = roomId('roomread')
    const created = await api.request('POST', '/rooms', { token: alice.token, json: { id, title: 'Read test' } })
    t.equal(created.status, 201, 'POST /rooms: 201')
    checkRoom(t, created.body, { id, title: 'Read test', private: false, createdBy: alice.id, lastSeq: 0, readSeq: 0, unread: 0 }, 'POST /rooms')
    for (let i = 1; i <= 3; i++) t.equal((await post(alice, id, { body: `m${i}` })).status, 201, `alice posts m${i}`)
    checkRoom(t, await getRoom(bob, id), { id, lastSeq: 3, readSeq: 0, unread: 3 }, 'GET /rooms/:id for a reader who read nothing')
    checkRoom(t, await getRoom(alice, id), { id, lastSeq: 3, readSeq: 3, unread: 0 }, 'GET /rooms/:id for the author')
    t.equal((await putRead(bob, id, 1)).status, 200, 'bob reads up to 1')
    checkRoom(t, await getRoom(bob, id), { id, lastSeq: 3, readSeq: 1, unread: 2 }, 'GET /rooms/:id after PUT read 1')
    const list = await api.request('GET', '/rooms', { token: bob.token })
    t.equal(list.status, 200, 'GET /rooms: 200')
    const inList = (list.body?.rooms ?? []).find((r: any) => r.id === id)
    checkRoom(t, inList, { id, lastSeq: 3, readSeq: 1, unread: 2 }, 'GET /rooms (bob)')
    const aliceList = await api.request('GET', '/rooms', { token: alice.token })
    checkRoom(t, (aliceList.body?.rooms ?? []).find((r: any) => r.id === id), { id, lastSeq: 3, readSeq: 3, unread: 0 }, 'GET /rooms (alice)')
    const general = (list.body?.rooms ?? []).find((r: any) => r.id === 'general')
    checkRoom(t, general, { id: 'general' }, 'GET /rooms: general has readSeq and unread too')
  })

  t.test('PUT /rooms/:id/read: 200 {room, readSeq} = max(current, min(seq, lastSeq)); if it moved, the room\'s sockets get receipt', async (t) => {
    const room = await createRoom(t, 'putread', alice, [bob])
    for (let i = 1; i <= 5; i++) await post(alice, room, { body: `m${i}` })
    const a = await open(t, alice)
    const b = await open(t, bob)
    await join(t, a, room)
    await join(t, b, room)

    const r3 = await putRead(bob, room, 3)
    t.equal(r3.status, 200, 'read 3: 200')
    t.strictSame(r3.body, { room, readSeq: 3 }, 'read 3: {room, readSeq: 3}')
    const expectReceipt = { type: 'receipt', room, userId: bob.id, username: bob.username, readSeq: 3 }
    const ra = await nextOrNull(a, (f) => f.type === 'receipt', 3000)
    t.strictSame(pickFields(ra ?? undefined, ['type', 'room', 'userId', 'username', 'readSeq']), expectReceipt, 'another member\'s socket: receipt {room, userId, username, readSeq}')
    const rb = await nextOrNull(b, (f) => f.type === 'receipt', 3000)
    t.strictSame(pickFields(rb ?? undefined, ['type', 'room', 'userId', 'username', 'readSeq']), expectReceipt, 'the reader\'s own joined socket: receipt (REST has no reading socket)')

    const back = await putRead(bob, room, 1)
    t.strictSame(pickFields(back.body, ['room', 'readSeq']), { room, readSeq: 3 }, 'read 1 after 3: never backwards (readSeq 3)')
    const same = await putRead(bob, room, 3)
    t.strictSame(pickFields(same.body, ['room', 'readSeq']), { room, readSeq: 3 }, 'read 3 again: 3')
    t.strictSame(receipts(await drainUntilPong(a)), [], 'no move: no receipt')

    const far = await putRead(bob, room, 999)
    t.strictSame(pickFields(far.body, ['room', 'readSeq']), { room, readSeq: 5 }, 'read 999: clamped to lastSeq 5')
    const rFar = await nextOrNull(a, (f) => f.type === 'receipt', 3000)
    t.equal(rFar?.readSeq, 5, 'receipt with the clamped readSeq 5')
    checkRoom(t, await getRoom(bob, room), { lastSeq: 5, readSeq: 5, unread: 0 }, 'GET /rooms/:id after')

    const zero = await putRead(carol, room, 0)
    t.equal(zero.status, 200, 'read 0 (public room, not a member): 200')
    t.strictSame(pickFields(zero.body, ['room', 'readSeq']), { room, readSeq: 0 }, 'read 0: readSeq 0')
    t.strictSame(receipts(await drainUntilPong(a)), [], 'read 0 did not move: no receipt')
  })

  t.test('PUT /rooms/:id/read: never backwards, also when sent concurrently; receipts only rise', async (t) => {
    const room = await createRoom(t, 'readrace', alice, [bob])
    for (let i = 1; i <= 8; i++) await post(alice, room, { body: `m${i}` })
    const a = await open(t, alice)
    await join(t, a, room)
    const seqs = [3, 8, 1, 6, 2, 7, 4, 5]
    const results = await Promise.all(seqs.map(async (seq) => await putRead(bob, room, seq)))
    t.ok(results.every((r) => r.status === 200), 'all 200')
    results.forEach((r, i) => { if (typeof r.body?.readSeq !== 'number' || r.body.readSeq < seqs[i]!) t.fail(`read ${seqs[i]!} answered readSeq ${String(r.body?.readSeq)} (below what was read)`) })
    t.equal((await getRoom(bob, room)).readSeq, 8, 'the position is the highest read')
    const got = receipts(await drainUntilPong(a)).map((f) => f.readSeq as number)
    t.ok(got.length >= 1 && got.every((v, i) => i === 0 || v > got[i - 1]!), `receipts strictly rise (${got.join(',')})`)
    t.equal(got[got.length - 1], 8, 'the last receipt is 8')
  })

  t.test('PUT /rooms/:id/read: private room and not a member 403; unknown room 404; bad seq 400', async (t) => {
    const priv = await createRoom(t, 'readpriv', alice, [bob], true)
    await post(alice, priv, { body: 'x' })
    t.equal((await putRead(bob, priv, 1)).status, 200, 'a member of the private room: 200')
    assertError(t, await putRead(carol, priv, 1), 403, 'forbidden', 'private room, not a member')
    assertError(t, await putRead(carol, roomId('nosuch'), 1), 404, 'not_found', 'unknown room')
    assertError(t, await putRead(bob, priv, 'one'), 400, 'bad_request', 'seq a string')
    assertError(t, await putRead(bob, priv, 1.5), 400, 'bad_request', 'seq not an integer')
    assertError(t, await api.request('PUT', path(priv, '/read'), { token: bob.token, json: {} }), 400, 'bad_request', 'no seq')
    assertError(t, await api.request('PUT', path(priv, '/read'), { json: { seq: 1 } }), 401, 'unauthorized', 'no token')
  })

  t.test('GET /rooms/:id/receipts: 200 {room, receipts: [{userId, username, readSeq}]}, above 0 only, highest readSeq first; limit 1-100', async (t) => {
    const room = await createRoom(t, 'receipts', alice, [bob, carol, dave])
    for (let i = 1; i <= 5; i++) await post(alice, room, { body: `m${i}` }) // alice: 5 (author)
    await putRead(bob, room, 2)
    await putRead(dave, room, 4)
    await putRead(carol, room, 0) // stays 0: not listed
    const res = await api.request('GET', path(room, '/receipts'), { token: bob.token })
    t.equal(res.status, 200, '200')
    t.equal(res.body?.room, room, 'room')
    const entries: any[] = res.body?.receipts ?? []
    t.strictSame(entries.map((r) => pickFields(r, ['userId', 'username', 'readSeq'])), [
      { userId: alice.id, username: alice.username, readSeq: 5 },
      { userId: dave.id, username: dave.username, readSeq: 4 },
      { userId: bob.id, username: bob.username, readSeq: 2 }
    ], 'above 0 only (carol absent), highest readSeq first')
    t.ok(entries.every((r) => Object.keys(r).sort().join(',') === 'readSeq,userId,username'), 'each entry is {userId, username, readSeq}')
    const one = await api.request('GET', path(room, '/receipts?limit=1'), { token: bob.token })
    t.strictSame((one.body?.receipts ?? []).map((r: any) => r.userId), [alice.id], 'limit=1: the highest only')
    t.equal((await api.request('GET', path(room, '/receipts?limit=100'), { token: bob.token })).status, 200, 'limit=100: 200')
    for (const bad of ['0', '101', 'x']) assertError(t, await api.request('GET', path(room, `/receipts?limit=${bad}`), { token: bob.token }), 400, 'bad_request', `limit=${bad}`)
    const empty = await createRoom(t, 'receiptsempty', alice)
    const none = await api.request('GET', path(empty, '/receipts'), { token: alice.token })
    t.strictSame(pickFields(none.body, ['room', 'receipts']), { room: empty, receipts: [] }, 'a room nobody read: no receipts')

    const priv = await createRoom(t, 'receiptspriv', alice, [bob], true)
    t.equal((await api.request('GET', path(priv, '/receipts'), { token: bob.token })).status, 200, 'a member of the private room: 200')
    assertError(t, await api.request('GET', path(priv, '/receipts'), { token: carol.token }), 403, 'forbidden', 'private room, not a member')
    assertError(t, await api.request('GET', path(roomId('nosuch'), '/receipts'), { token: carol.token }), 404, 'not_found', 'unknown room')
  })

  t.test('read frame: read {room, readSeq}; receipt to the room\'s other sockets, the reader\'s other devices included, not the reading socket', async (t) => {
    const room = await createRoom(t, 'readframe', alice, [bob, carol])
    for (let i = 1; i <= 4; i++) await post(alice, room, { body: `m${i}` })
    const b1 = await open(t, bob)
    const b2 = await open(t, bob)
    const a = await open(t, alice)
    const c = await open(t, carol)
    for (const s of [b1, b2, a, c]) await join(t, s, room)
    const bOut = await open(t, bob) // connected, not joined to the room

    const reply = await b1.request({ type: 'read', room, seq: 2 })
    t.strictSame(pickFields(reply, ['type', 'room', 'readSeq']), { type: 'read', room, readSeq: 2 }, 'reply: read {room, readSeq: 2}, with the ref')
    const expected = { type: 'receipt', room, userId: bob.id, username: bob.username, readSeq: 2 }
    for (const [label, s] of [['the reader\'s other device', b2], ['another member', a], ['a third member', c]] as const) {
      const r = await nextOrNull(s, (f) => f.type === 'receipt', 3000)
      t.strictSame(pickFields(r ?? undefined, ['type', 'room', 'userId', 'username', 'readSeq']), expected, `${label}: receipt`)
    }
    t.strictSame(receipts(await drainUntilPong(b1)), [], 'the reading socket gets no receipt')
    t.strictSame(receipts(await drainUntilPong(bOut)), [], 'a socket not joined to the room gets no receipt')
    t.equal((await api.request('GET', path(room), { token: bob.token })).body?.readSeq, 2, 'GET /rooms/:id: readSeq 2')

    const backwards = await b1.request({ type: 'read', room, seq: 1 })
    t.strictSame(pickFields(backwards, ['type', 'room', 'readSeq']), { type: 'read', room, readSeq: 2 }, 'read 1 after 2: readSeq stays 2')
    t.strictSame(receipts(await drainUntilPong(a)), [], 'no move: no receipt')
    const clamped = await b2.request({ type: 'read', room, seq: 100 })
    t.strictSame(pickFields(clamped, ['type', 'room', 'readSeq']), { type: 'read', room, readSeq: 4 }, 'read 100: clamped to lastSeq 4')
    const r1 = await nextOrNull(b1, (f) => f.type === 'receipt', 3000)
    t.equal(r1?.readSeq, 4, 'now b1 is the other device: receipt readSeq 4')

    const b3 = await open(t, bob)
    const joined = await join(t, b3, room)
    t.equal(joined.readSeq, 4, 'joined.readSeq: the user\'s read position in the room')
    const cj = await join(t, await open(t, carol), room)
    t.equal(cj.readSeq, 0, 'joined.readSeq: 0 for a member who read nothing')
    const aj = await join(t, await open(t, alice), room)
    t.equal(aj.readSeq, 4, 'joined.readSeq: the author\'s position is its last message')

    const bad = await b1.request({ type: 'read', room, seq: 'two' })
    checkErrorFrame(t, bad, 'bad_request', undefined, 'read with a non-numeric seq')
  })

  t.test('read to a room the socket has not joined: error forbidden', async (t) => {
    const room = await createRoom(t, 'readforbid', alice, [bob])
    await post(alice, room, { body: 'x' })
    const b = await open(t, bob)
    const ref = 'read-unjoined'
    b.send({ type: 'read', room, seq: 1, ref })
    checkErrorFrame(t, await b.next((f) => f.ref === ref), 'forbidden', ref, 'read before join')
    t.equal((await api.request('GET', path(room), { token: bob.token })).body?.readSeq, 0, 'the position did not move')
    await join(t, b, room)
    await b.request({ type: 'leave', room })
    const ref2 = 'read-after-leave'
    b.send({ type: 'read', room, seq: 1, ref: ref2 })
    checkErrorFrame(t, await b.next((f) => f.ref === ref2), 'forbidden', ref2, 'read after leave')
  })

  t.test('storing a message moves its author\'s read position up to its seq; that move sends no receipt', async (t) => {
    const room = await createRoom(t, 'authorread', alice, [bob])
    const a1 = await open(t, alice)
    const a2 = await open(t, alice)
    const b = await open(t, bob)
    for (const s of [a1, a2, b]) await join(t, s, room)
    const ack = await a1.request({ type: 'message', room, body: 'by socket' })
    t.equal(ack.type, 'ack', 'acked')
    t.equal((await nextOrNull(b, (f) => f.type === 'message', 3000))?.seq, ack.seq, 'bob got the message')
    t.equal((await nextOrNull(a2, (f) => f.type === 'message', 3000))?.seq, ack.seq, 'alice\'s other device got the message')
    const rest = await post(alice, room, { body: 'by REST' })
    t.equal(rest.status, 201, 'REST post 201')
    await nextOrNull(b, (f) => f.type === 'message' && f.seq === rest.body?.seq, 3000)
    checkRoom(t, await getRoom(alice, room), { lastSeq: 2, readSeq: 2, unread: 0 }, 'the author\'s position is its last message')
    checkRoom(t, await getRoom(bob, room), { lastSeq: 2, readSeq: 0, unread: 2 }, 'the other member\'s position did not move')
    for (const [label, s] of [['bob', b], ['alice\'s other device', a2], ['the sending socket', a1]] as const) {
      t.strictSame(receipts(await drainUntilPong(s)), [], `${label}: no receipt for the author's move`)
    }
    const rec = await api.request('GET', path(room, '/receipts'), { token: bob.token })
    t.strictSame((rec.body?.receipts ?? []).map((r: any) => pickFields(r, ['userId', 'readSeq'])), [{ userId: alice.id, readSeq: 2 }], 'receipts list the author at its last seq')
  })

  // ---------------------------------------------------------------------------------------------
  // Socket token lifecycle

  t.test('welcome.expiresAt: ISO-8601, the token\'s expiry', async (t) => {
    for (const via of VIAS) {
      const s = await connectUntilTeardown(t, baseUrl, alice.token, { via })
      t.match(s.welcome.expiresAt, ISO_8601, `${via}: ISO-8601`)
      t.ok(isoNear(s.welcome.expiresAt, expMs(alice.token)), `${via}: the token's exp (${String(s.welcome.expiresAt)})`)
    }
    const short = await login(B.api, twinName)
    const s = await open(t, { token: short.body?.token }, B.baseUrl)
    t.ok(isoNear(s.welcome.expiresAt, Date.now() + 3000, 1500), `JWT_TTL=3: about 3 s ahead (${String(s.welcome.expiresAt)})`)
  })

  t.test('auth: authed {expiresAt}; the socket lives until the later of its current and the new token\'s expiry', async (t) => {
    const s = await open(t, alice)
    const current = s.welcome.expiresAt as string
    const fresh = await login(api, alice.username)
    const ref = 'auth-fresh'
    s.send({ type: 'auth', token: fresh.body?.token, ref })
    const authed = await s.next((f) => f.ref === ref)
    t.equal(authed.type, 'authed', 'a fresh token of the same user: authed, with the ref')
    t.ok(isoNear(authed.expiresAt, Math.max(Date.parse(current), expMs(fresh.body?.token))), `expiresAt is the later of the two (${String(authed.expiresAt)})`)
    // A later expiry by hand (same claims, exp + 10 min), then an earlier one.
    const { header, payload } = decodeJwt(fresh.body?.token)
    const laterExp = (payload.exp as number) + 600
    const later = await s.request({ type: 'auth', token: signJwt(header, { ...payload, exp: laterExp }) })
    t.strictSame(pickFields(later, ['type']), { type: 'authed' }, 'a later token: authed')
    t.ok(isoNear(later.expiresAt, laterExp * 1000), `a later token: expiresAt moves to it (${String(later.expiresAt)})`)
    const earlier = await s.request({ type: 'auth', token: signJwt(header, { ...payload, exp: Math.floor(Date.now() / 1000) + 120 }) })
    t.equal(earlier.type, 'authed', 'an earlier (still valid) token: authed')
    t.equal(earlier.expiresAt, later.expiresAt, 'an earlier token: the expiry stays the later one')
    t.equal((await s.request({ type: 'ping' })).type, 'pong', 'the socket works')
  })

  t.test('auth: a token that is invalid, expired or for another user → error unauthorized; the socket keeps its old expiry', async (t) => {
    const s = await open(t, alice)
    const current = s.welcome.expiresAt as string
    const { header, payload } = decodeJwt(alice.token)
    const far = (payload.exp as number) + 3600
    const bobLater = (() => { const d = decodeJwt(bob.token); return signJwt(d.header, { ...d.payload, exp: far }) })()
    const refused: Array<[string, string]> = [
      ['malformed', 'not-a-jwt'],
      ['another user\'s token', bob.token],
      ['another user\'s token with a later expiry', bobLater],
      ['expired', signJwt(header, { ...payload, exp: Math.floor(Date.now() / 1000) - 60 })],
      ['badly signed, later expiry', signJwt(header, { ...payload, exp: far }, { secret: OTHER_SECRET })],
      ['a refresh token', alice.refreshToken]
    ]
    for (const [label, token] of refused) {
      const ref = `auth-bad-${label.replace(/[^a-z]/g, '')}`.slice(0, 60)
      s.send({ type: 'auth', token, ref })
      checkErrorFrame(t, await s.next((f) => f.ref === ref), 'unauthorized', ref, label)
    }
    t.equal((await s.request({ type: 'ping' })).type, 'pong', 'the socket stays open')
    const same = await s.request({ type: 'auth', token: alice.token })
    t.strictSame(pickFields(same, ['type', 'expiresAt']), { type: 'authed', expiresAt: current }, 'the expiry is unchanged (its own token again: the welcome\'s expiresAt)')
    t.equal(s.welcome.user?.id, alice.id, 'still alice')
  })

  t.test('JWT_TTL: a socket refreshed with auth stays open past its first token\'s expiry; one that is not closes with 1008', async (t) => {
    const first = await login(B.api, twinName)
    const t1 = first.body?.token as string
    const refreshed = await open(t, { token: t1 }, B.baseUrl)
    const plain = await open(t, { token: t1 }, B.baseUrl)
    const exp1 = Date.parse(refreshed.welcome.expiresAt)
    t.ok(isoNear(refreshed.welcome.expiresAt, expMs(t1)), 'welcome.expiresAt: the token\'s exp')
    await delay(1100) // so that a new token's exp (whole seconds) is later than the first's
    const r = await refresh(B.api, first.body?.refreshToken)
    t.equal(r.status, 200, 'refresh: 200')
    const t2 = r.body?.token as string
    t.ok(expMs(t2) > expMs(t1), 'precondition: the new token expires later')
    const authed = await refreshed.request({ type: 'auth', token: t2 })
    t.equal(authed.type, 'authed', 'auth with the refreshed token: authed')
    t.ok(isoNear(authed.expiresAt, expMs(t2)) && Date.parse(authed.expiresAt) > exp1, `authed.expiresAt is the new token's (${String(authed.expiresAt)})`)
    const back = await refreshed.request({ type: 'auth', token: t1 })
    t.equal(back.expiresAt, authed.expiresAt, 'auth with the first (earlier, still valid) token: the expiry stays the later one')

    const closed = await Promise.race([plain.closed, delay(exp1 - Date.now() + 4000).then(() => null)])
    const at = Date.now()
    t.equal(closed?.code, 1008, 'the socket that did not refresh: closed with 1008')
    t.ok(at >= exp1 - 1000, `not before its expiresAt (${at - exp1} ms after)`)
    t.equal(refreshed.ws.readyState, refreshed.ws.OPEN, 'the refreshed socket is still open then')
    t.equal((await refreshed.request({ type: 'ping' })).type, 'pong', 'the refreshed socket works past the first expiry')
    const exp2 = Date.parse(authed.expiresAt)
    const closed2 = await Promise.race([refreshed.closed, delay(exp2 - Date.now() + 4000).then(() => null)])
    t.equal(closed2?.code, 1008, 'the refreshed socket closes with 1008 at its new expiry')
    t.ok(Date.now() >= exp2 - 1000, 'not before the new expiresAt')
  })

  // ---------------------------------------------------------------------------------------------
  // Tokens bound to their database and user

  t.test('a token is valid only against the database that issued it: otherwise 401 (REST) or a refused upgrade', async (t) => {
    t.equal(twinIdA, twinIdB, `precondition: the twin has the same id on both databases (${twinIdA} / ${twinIdB})`)
    const onB = await login(B.api, twinName) // JWT_TTL 3: used at once
    const tokenB = onB.body?.token as string
    const onA = await loginAcct(api, twinIdA, twinName)
    t.equal((await B.api.request('GET', '/auth/me', { token: tokenB })).status, 200, 'control: B\'s token on B: 200')
    t.equal((await api.request('GET', '/auth/me', { token: onA.token })).status, 200, 'control: A\'s token on A: 200')
    assertError(t, await api.request('GET', '/auth/me', { token: tokenB }), 401, 'unauthorized', 'B\'s token on A: GET /auth/me')
    assertError(t, await api.request('GET', '/rooms', { token: tokenB }), 401, 'unauthorized', 'B\'s token on A: GET /rooms')
    assertError(t, await api.request('POST', path('general', '/messages'), { token: tokenB, json: { body: 'x' } }), 401, 'unauthorized', 'B\'s token on A: POST /rooms/general/messages')
    assertError(t, await B.api.request('GET', '/auth/me', { token: onA.token }), 401, 'unauthorized', 'A\'s token on B: GET /auth/me')
    for (const via of VIAS) {
      t.equal(await upgradeOutcome(baseUrl, tokenB, via), 401, `B's token on A's /ws (${via}): upgrade refused with 401`)
    }
    t.equal(await upgradeOutcome(B.baseUrl, onA.token, 'protocol'), 401, 'A\'s token on B\'s /ws: upgrade refused with 401')
    assertError(t, await refresh(api, onB.body?.refreshToken), 401, 'unauthorized', 'B\'s refresh token on A')
    const s = await open(t, onA)
    const ref = 'auth-other-db'
    s.send({ type: 'auth', token: (await login(B.api, twinName)).body?.token, ref })
    checkErrorFrame(t, await s.next((f) => f.ref === ref), 'unauthorized', ref, 'auth frame on A with B\'s token of the same-looking user')
  })

  t.test('a token is valid only while its user exists: a token naming no user → 401', async (t) => {
    const { header, payload } = decodeJwt(alice.token)
    // Replace every claim that names alice (id or username) with a user that does not exist.
    const ghost: Record<string, unknown> = {}
    let named = false
    for (const [k, v] of Object.entries(payload)) {
      if (v === alice.id || v === Number(alice.id)) {
        ghost[k] = typeof v === 'number' ? 987654 : '987654'
        named = true
      } else if (v === alice.username) {
        ghost[k] = 'ghost_user_x'
      } else {
        ghost[k] = v
      }
    }
    if (!named) {
      t.comment('the token names its user in no claim equal to the user id; skipped')
      return
    }
    const token = signJwt(header, ghost)
    assertError(t, await api.request('GET', '/auth/me', { token }), 401, 'unauthorized', 'GET /auth/me')
    assertError(t, await api.request('GET', '/rooms', { token }), 401, 'unauthorized', 'GET /rooms')
    t.equal(await upgradeOutcome(baseUrl, token, 'header'), 401, 'upgrade refused with 401')
  })

  // ---------------------------------------------------------------------------------------------
  // NUL and lone surrogates on the socket, and in the new routes' ids

  t.test('NUL and lone surrogates: bad_request on auth and message frames; nothing stored', async (t) => {
    const room = await createRoom(t, 'nulframes', alice)
    const s = await open(t, alice)
    await join(t, s, room)
    const cases: Array<[string, Record<string, unknown>]> = [
      ['auth: NUL in token', { type: 'auth', token: `${alice.token}\u0000` }],
      ['auth: lone surrogate in token', { type: 'auth', token: `${alice.token}\ud800` }],
      ['message: NUL in body', { type: 'message', room, body: 'a\u0000b' }],
      ['message: lone high surrogate in body', { type: 'message', room, body: 'a\ud800b' }],
      ['message: lone low surrogate in body', { type: 'message', room, body: '\udfff' }],
      ['message: NUL in clientMsgId', { type: 'message', room, body: 'ok', clientMsgId: 'c\u0000' }],
      ['message: lone surrogate in clientMsgId', { type: 'message', room, body: 'ok', clientMsgId: 'c\ud800' }],
      ['message: NUL in room', { type: 'message', room: `${room}\u0000`, body: 'ok' }],
      ['read: NUL in room', { type: 'read', room: `${room}\u0000`, seq: 1 }]
    ]
    for (const [label, frame] of cases) {
      const reply = await s.request(frame)
      checkErrorFrame(t, reply, 'bad_request', undefined, label)
    }
    t.equal((await s.request({ type: 'ping' })).type, 'pong', 'the socket stays open')
    t.strictSame(await historyOf(room), [], 'nothing stored')
    const fine = await s.request({ type: 'message', room, body: 'ok 😀', clientMsgId: 'c-😀' })
    t.equal(fine.type, 'ack', 'a valid surrogate pair is accepted')
    t.strictSame((await historyOf(room)).map((m) => [m.body, m.clientMsgId]), [['ok 😀', 'c-😀']], 'and comes back unchanged')
  })

  t.test('NUL and lone surrogates refused in every text field: register, login, POST /rooms, join and typing frames', async (t) => {
    const cases: Array<[string, string, string, unknown]> = [
      ['register: NUL in username', 'POST', '/auth/register', { username: 'nul\u0000user', password: PASSWORD }],
      ['register: lone surrogate in username', 'POST', '/auth/register', { username: 'sur\ud800user', password: PASSWORD }],
      ['register: NUL in password', 'POST', '/auth/register', { username: uname('nulpw'), password: 'password\u0000x' }],
      ['register: lone surrogate in password', 'POST', '/auth/register', { username: uname('surpw'), password: 'password\udc00x' }],
      ['login: NUL in username', 'POST', '/auth/login', { username: `${alice.username}\u0000`, password: PASSWORD }],
      ['login: lone surrogate in password', 'POST', '/auth/login', { username: alice.username, password: `${PASSWORD}\ud800` }],
      ['POST /rooms: NUL in id', 'POST', '/rooms', { id: 'room\u0000x' }],
      ['POST /rooms: NUL in title', 'POST', '/rooms', { id: roomId('nultitle'), title: 'a\u0000b' }],
      ['POST /rooms: lone surrogate in title', 'POST', '/rooms', { id: roomId('surtitle'), title: 'a\ud800b' }]
    ]
    for (const [label, method, url, json] of cases) {
      assertError(t, await api.request(method, url, { token: alice.token, json }), 400, 'bad_request', label)
    }
    const id = roomId('unititle')
    const title = 'Zürich 😀 漢字'
    const created = await api.request('POST', '/rooms', { token: alice.token, json: { id, title } })
    t.equal(created.body?.title, title, 'a title with valid unicode comes back unchanged')
    t.equal((await getRoom(alice, id)).title, title, 'and is stored unchanged')

    const s = await open(t, alice)
    for (const [label, frame] of [
      ['join: NUL in room', { type: 'join', room: 'general\u0000' }],
      ['join: lone surrogate in room', { type: 'join', room: 'general\ud800' }],
      ['typing: NUL in room', { type: 'typing', room: 'general\u0000', typing: true }],
      ['leave: NUL in room', { type: 'leave', room: 'general\u0000' }]
    ] as const) {
      checkErrorFrame(t, await s.request(frame), 'bad_request', undefined, label)
    }
  })

  t.test('NUL in the room id of the new routes: 400 bad_request', async (t) => {
    const bad = encodeURIComponent('room\u0000x')
    assertError(t, await api.request('GET', `/rooms/${bad}/members`, { token: alice.token }), 400, 'bad_request', 'GET /rooms/:id/members')
    assertError(t, await api.request('POST', `/rooms/${bad}/messages`, { token: alice.token, json: { body: 'x' } }), 400, 'bad_request', 'POST /rooms/:id/messages')
    assertError(t, await api.request('PUT', `/rooms/${bad}/read`, { token: alice.token, json: { seq: 1 } }), 400, 'bad_request', 'PUT /rooms/:id/read')
    assertError(t, await api.request('GET', `/rooms/${bad}/receipts`, { token: alice.token }), 400, 'bad_request', 'GET /rooms/:id/receipts')
  })
})
