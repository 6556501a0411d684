import t from 'tap'
import { authenticateUpgrade, checkToken, createUserCheck, SUBPROTOCOL, tokenFromUpgrade, type UpgradeHeaders, type VerifyToken } from '../../src/gateway/auth.js'

const headers = (overrides: Partial<UpgradeHeaders> = {}): UpgradeHeaders =>
  ({ protocol: '', authorization: '', query: '', ...overrides })

const EXP = 1_900_000_000
const claims = { sub: '42', username: 'alice', exp: EXP }

/** A verifier that accepts exactly one token and records what it was asked. */
function verifier (good: string, result: ReturnType<VerifyToken> = claims): { verify: VerifyToken, seen: string[] } {
  const seen: string[] = []
  const verify: VerifyToken = (token) => {
    seen.push(token)
    if (token !== good) throw Object.assign(new Error('bad signature'), { code: 'FAST_JWT_INVALID_SIGNATURE' })
    return result
  }
  return { verify, seen }
}

const throwing = (error: unknown): VerifyToken => () => { throw error }

const MISSING = 'missing token: send the subprotocols "chat.v1, bearer.<jwt>", Authorization: Bearer <jwt>, or ?token=<jwt>'

t.test('the subprotocol is chat.v1', async (t) => {
  t.equal(SUBPROTOCOL, 'chat.v1')
})

t.test('tokenFromUpgrade: the bearer.<jwt> subprotocol', async (t) => {
  t.equal(tokenFromUpgrade(headers({ protocol: 'bearer.aaa.bbb.ccc' })), 'aaa.bbb.ccc', 'alone; the dots of the JWT kept')
  t.equal(tokenFromUpgrade(headers({ protocol: 'chat.v1, bearer.tok' })), 'tok', 'after chat.v1')
  t.equal(tokenFromUpgrade(headers({ protocol: 'bearer.tok,chat.v1' })), 'tok', 'before it, no space')
  t.equal(tokenFromUpgrade(headers({ protocol: '  chat.v1 ,   bearer.tok   ,other ' })), 'tok', 'arbitrary spaces')
  t.equal(tokenFromUpgrade(headers({ protocol: 'chat.v1,\tbearer.tok' })), 'tok', 'a tab')
  t.equal(tokenFromUpgrade(headers({ protocol: 'bearer.first, bearer.second' })), 'first', 'the first one wins')
  t.equal(tokenFromUpgrade(headers({ protocol: 'chat.v1, Bearer.tok' })), null, 'the prefix is case-sensitive, like subprotocols')
  t.equal(tokenFromUpgrade(headers({ protocol: 'xbearer.tok' })), null, 'the prefix must start the subprotocol')
})

t.test('tokenFromUpgrade: Authorization: Bearer', async (t) => {
  t.equal(tokenFromUpgrade(headers({ authorization: 'Bearer abc.def.ghi' })), 'abc.def.ghi')
  t.equal(tokenFromUpgrade(headers({ authorization: 'bearer abc' })), 'abc', 'the scheme is case-insensitive')
  t.equal(tokenFromUpgrade(headers({ authorization: 'BEARER abc' })), 'abc')
  t.equal(tokenFromUpgrade(headers({ authorization: 'Bearer    abc  ' })), 'abc', 'extra spaces')
  t.equal(tokenFromUpgrade(headers({ authorization: 'Basic YWxpY2U6cHc=' })), null, 'another scheme')
  t.equal(tokenFromUpgrade(headers({ authorization: 'Bearer' })), null, 'no token')
  t.equal(tokenFromUpgrade(headers({ authorization: 'Bearer ' })), null, 'an empty token')
  t.equal(tokenFromUpgrade(headers({ authorization: 'Bearer a b' })), null, 'two words')
  t.equal(tokenFromUpgrade(headers({ authorization: 'Bearerabc' })), null, 'no space after the scheme')
})

t.test('tokenFromUpgrade: ?token=, URL-decoded', async (t) => {
  t.equal(tokenFromUpgrade(headers({ query: 'token=abc.def' })), 'abc.def')
  t.equal(tokenFromUpgrade(headers({ query: 'x=1&token=a%2Bb%3Dc&y=2' })), 'a+b=c', 'percent-decoded among other parameters')
  t.equal(tokenFromUpgrade(headers({ query: 'token=a+b' })), 'a b', 'plus is a space, as in any query string')
  t.equal(tokenFromUpgrade(headers({ query: 'token=first&token=second' })), 'first', 'the first one wins')
  t.equal(tokenFromUpgrade(headers({ query: 'token=' })), null, 'empty')
  t.equal(tokenFromUpgrade(headers({ query: 'token' })), null, 'no value')
  t.equal(tokenFromUpgrade(headers({ query: 'tok=abc&Token=abc' })), null, 'other names')
})

t.test('tokenFromUpgrade: missing everywhere is null', async (t) => {
  t.equal(tokenFromUpgrade(headers()), null)
  t.equal(tokenFromUpgrade(headers({ protocol: 'chat.v1', authorization: 'Basic x', query: 'room=general' })), null)
})

t.test('tokenFromUpgrade: subprotocol, then Authorization, then query', async (t) => {
  const all = { protocol: 'chat.v1, bearer.from-protocol', authorization: 'Bearer from-header', query: 'token=from-query' }
  t.equal(tokenFromUpgrade(headers(all)), 'from-protocol')
  t.equal(tokenFromUpgrade(headers({ ...all, protocol: 'chat.v1' })), 'from-header')
  t.equal(tokenFromUpgrade(headers({ ...all, protocol: '', authorization: '' })), 'from-query')
  t.equal(tokenFromUpgrade(headers({ ...all, protocol: '', authorization: 'Basic x' })), 'from-query', 'an unusable header falls through')
})

t.test('tokenFromUpgrade: an empty bearer. subprotocol counts as missing, like an empty ?token=', async (t) => {
  t.equal(tokenFromUpgrade(headers({ protocol: 'chat.v1, bearer.', authorization: 'Bearer from-header' })), 'from-header')
  t.equal(tokenFromUpgrade(headers({ protocol: 'chat.v1, bearer.' })), null)
})

t.test('authenticateUpgrade: a valid token', async (t) => {
  const { verify, seen } = verifier('good')
  t.same(authenticateUpgrade(headers({ authorization: 'Bearer good' }), verify),
    { ok: true, user: { id: '42', username: 'alice' }, expiresAt: EXP * 1000, protocol: '' })
  t.same(seen, ['good'], 'verify saw the token')
})

t.test('authenticateUpgrade: protocol is chat.v1 only when the client offered it', async (t) => {
  const { verify } = verifier('good')
  const protocolOf = (h: Partial<UpgradeHeaders>): string | undefined => {
    const auth = authenticateUpgrade(headers(h), verify)
    return auth.ok ? auth.protocol : undefined
  }
  t.equal(protocolOf({ protocol: 'chat.v1, bearer.good' }), 'chat.v1')
  t.equal(protocolOf({ protocol: 'bearer.good ,  chat.v1 ' }), 'chat.v1', 'anywhere in the list, with spaces')
  t.equal(protocolOf({ protocol: 'chat.v1', authorization: 'Bearer good' }), 'chat.v1', 'with the token elsewhere')
  t.equal(protocolOf({ protocol: 'bearer.good' }), '', 'not offered')
  t.equal(protocolOf({ protocol: 'chat.v2, bearer.good' }), '', 'another version')
  t.equal(protocolOf({ protocol: 'CHAT.V1, bearer.good' }), '', 'compared exactly')
  t.equal(protocolOf({ protocol: 'chat.v1x, bearer.good' }), '', 'not a prefix match')
  t.equal(protocolOf({ query: 'token=good' }), '', 'no subprotocols at all')
})

t.test('authenticateUpgrade: expiresAt is exp in milliseconds', async (t) => {
  const auth = authenticateUpgrade(headers({ query: 'token=good' }), verifier('good', { ...claims, exp: 1_700_000_123 }).verify)
  t.equal(auth.ok && auth.expiresAt, 1_700_000_123_000)
})

t.test('authenticateUpgrade: no token anywhere', async (t) => {
  let called = false
  const verify: VerifyToken = () => { called = true; return claims }
  t.same(authenticateUpgrade(headers({ protocol: 'chat.v1' }), verify), { ok: false, message: MISSING })
  t.notOk(called, 'verify is not called')
})

t.test('authenticateUpgrade: verify errors', async (t) => {
  const h = headers({ authorization: 'Bearer x' })
  const expired = Object.assign(new Error('The token has expired'), { code: 'FAST_JWT_EXPIRED' })
  t.same(authenticateUpgrade(h, throwing(expired)), { ok: false, message: 'token expired' })
  t.same(authenticateUpgrade(h, throwing({ code: 'TOKEN_EXPIRED' })), { ok: false, message: 'token expired' }, 'any code containing EXPIRED')
  t.same(authenticateUpgrade(h, throwing({ code: 'expired' })), { ok: false, message: 'invalid token' }, 'the code is compared case-sensitively')
  t.same(authenticateUpgrade(h, throwing(Object.assign(new Error('sig'), { code: 'FAST_JWT_INVALID_SIGNATURE' }))), { ok: false, message: 'invalid token' })
  t.same(authenticateUpgrade(h, throwing(new Error('token expired'))), { ok: false, message: 'invalid token' }, 'the message is not looked at, only code')
  t.same(authenticateUpgrade(h, throwing('a string')), { ok: false, message: 'invalid token' }, 'a thrown non-error')
  t.same(authenticateUpgrade(h, throwing({ code: 42 })), { ok: false, message: 'invalid token' }, 'a numeric code')
})

t.test('authenticateUpgrade: claims that do not describe a user are refused', async (t) => {
  const h = headers({ authorization: 'Bearer good' })
  const refused = { ok: false, message: 'invalid token' }
  const check = (bad: Record<string, unknown>, what: string): void => {
    t.same(authenticateUpgrade(h, () => bad), refused, what)
  }
  check({ username: 'alice', exp: EXP }, 'no sub')
  check({ ...claims, sub: 42 }, 'a numeric sub')
  check({ ...claims, sub: '' }, 'an empty sub')
  check({ ...claims, sub: 'alice' }, 'a sub that is not decimal')
  check({ ...claims, sub: '042' }, 'a leading zero')
  check({ ...claims, sub: '-1' }, 'negative')
  check({ ...claims, sub: '0' }, 'zero')
  check({ ...claims, sub: '1'.repeat(19) }, 'more digits than a bigint id')
  check({ ...claims, sub: ' 42' }, 'padded')
  check({ ...claims, sub: '42\n' }, 'a trailing newline')
  check({ sub: '42', exp: EXP }, 'no username')
  check({ ...claims, username: 7 }, 'a numeric username')
  check({ ...claims, username: null }, 'a null username')
  check({ sub: '42', username: 'alice' }, 'no exp')
  check({ ...claims, exp: String(EXP) }, 'exp as a string')
  check({ ...claims, exp: null }, 'a null exp')
  t.same(authenticateUpgrade(h, () => ({ ...claims, sub: '1'.repeat(18) })),
    { ok: true, user: { id: '1'.repeat(18), username: 'alice' }, expiresAt: EXP * 1000, protocol: '' }, '18 digits is fine')
})

t.test('authenticateUpgrade: extra claims are ignored', async (t) => {
  const auth = authenticateUpgrade(headers({ query: 'token=good' }), () => ({ ...claims, iat: 1, role: 'admin' } as ReturnType<VerifyToken>))
  t.same(auth, { ok: true, user: { id: '42', username: 'alice' }, expiresAt: EXP * 1000, protocol: '' })
})

t.test('checkToken: the claims of a verified token, or why not', async (t) => {
  t.same(checkToken('good', verifier('good').verify), { ok: true, user: { id: '42', username: 'alice' }, expiresAt: EXP * 1000 })
  t.same(checkToken('bad', verifier('good').verify), { ok: false, message: 'invalid token' })
  t.same(checkToken('x', throwing({ code: 'FAST_JWT_EXPIRED' })), { ok: false, message: 'token expired' })
  t.same(checkToken('good', () => ({ ...claims, sub: 'alice' })), { ok: false, message: 'invalid token' }, 'claims that name no user')
})

/** A lookup that records its calls and answers from `users`, or with `fail`'s error. */
function lookupOf (users: string[]): { lookup: (ids: string[]) => Promise<Set<string>>, calls: string[][], fail: (error: Error) => void } {
  const calls: string[][] = []
  let failure: Error | undefined
  return {
    calls,
    fail: (error) => { failure = error },
    lookup: async (ids) => {
      calls.push([...ids])
      if (failure !== undefined) throw failure
      return new Set(ids.filter((id) => users.includes(id)))
    }
  }
}

const DOWN = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
const isDown = (error: unknown): boolean => error === DOWN

t.test('createUserCheck: the checks of one event-loop turn share one lookup', async (t) => {
  const { lookup, calls } = lookupOf(['1', '2'])
  const users = createUserCheck({ lookup, isUnavailable: isDown })
  t.teardown(async () => await users.close())
  const answers = await Promise.all(['1', '2', '3', '1'].map(async (id) => await users.status(id)))
  t.same(answers, ['exists', 'exists', 'gone', 'exists'])
  t.equal(calls.length, 1, 'one lookup')
  t.same(calls[0], ['1', '2', '3', '1'], 'with every id asked')
  t.equal(await users.status('3'), 'gone', 'a later turn looks up again')
  t.equal(calls.length, 2)
})

t.test('createUserCheck: a database that cannot be reached is unavailable, not gone', async (t) => {
  const { lookup, fail } = lookupOf(['1'])
  const users = createUserCheck({ lookup, isUnavailable: isDown })
  t.teardown(async () => await users.close())
  fail(DOWN)
  t.same(await Promise.all([users.status('1'), users.status('2')]), ['unavailable', 'unavailable'])
  // Right after a failure the check answers at once, without asking the database again.
  t.equal(await users.status('1'), 'unavailable', 'refused during the cooldown')
})

t.test('createUserCheck: any other lookup error is a bug and rejects', async (t) => {
  const { lookup, fail } = lookupOf(['1'])
  const users = createUserCheck({ lookup, isUnavailable: isDown })
  t.teardown(async () => await users.close())
  const bug = new Error('syntax error')
  fail(bug)
  await t.rejects(users.status('1'), bug)
})

t.test('createUserCheck: closed, it answers unavailable', async (t) => {
  const { lookup } = lookupOf(['1'])
  const users = createUserCheck({ lookup, isUnavailable: isDown })
  await users.close()
  t.equal(await users.status('1'), 'unavailable')
})
