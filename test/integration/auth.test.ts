import { request as httpRequest } from 'node:http'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import type { Kysely } from 'kysely'
import type { Database } from '../../db/schema.js'
import { createPasswordHasher } from '../../src/auth/password.js'
import { loggerOptions, redactUrl } from '../../src/logger.js'
import { assertError } from '../helpers/assertions.js'
import { readBody, type ApiClient, type ApiResponse } from '../helpers/http.js'
import { eachBackend, startTestServer } from '../helpers/server.js'
import { decodeJwt } from '../helpers/tokens.js'

const PASSWORD = 'correct-horse-battery'
const DECIMAL_ID = /^[1-9][0-9]*$/
const RETRY_AFTER = /^[1-9][0-9]*$/
const PHC = /^\$scrypt\$ln=(\d+),r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/

function assertRetryAfter (t: Test, res: ApiResponse, max: number): void {
  const value = res.headers.get('retry-after') ?? ''
  t.match(value, RETRY_AFTER, 'Retry-After is a whole number of seconds > 0')
  t.ok(Number(value) <= max, `Retry-After ${value} <= ${max}`)
}

async function storedUser (db: Kysely<Database>, username: string): Promise<{ id: string, username: string, password_hash: string } | undefined> {
  return await db.selectFrom('users').select(['id', 'username', 'password_hash'])
    .where('username', '=', username).executeTakeFirst()
}

async function countUsers (db: Kysely<Database>): Promise<number> {
  const row = await db.selectFrom('users').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()
  return Number(row.n)
}

let counter = 0
/** Names unique within a file; each backend gets a fresh database anyway. */
function name (prefix: string): string {
  return `${prefix}_${++counter}`
}

async function register (api: ApiClient, username: string, password = PASSWORD): Promise<ApiResponse> {
  return await api.request('POST', '/auth/register', { json: { username, password } })
}

async function login (api: ApiClient, username: string, password = PASSWORD): Promise<ApiResponse> {
  return await api.request('POST', '/auth/login', { json: { username, password } })
}

/** fetch with a deadline, for bodies the helper cannot send and so a hung request fails the test instead of the run. */
async function rawPost (baseUrl: string, path: string, init: { body?: string, contentType?: string }): Promise<ApiResponse> {
  const headers: Record<string, string> = {}
  if (init.contentType !== undefined) headers['content-type'] = init.contentType
  const response = await fetch(baseUrl + path, { method: 'POST', headers, body: init.body, signal: AbortSignal.timeout(5000) })
  const text = await response.text()
  let body: unknown = text
  try { body = JSON.parse(text) } catch {}
  return { status: response.status, headers: response.headers, body, text }
}

/** A chunked upload (no Content-Length), so the server only learns the size while reading. */
async function chunkedPost (baseUrl: string, path: string, chunks: string[]): Promise<{ status: number, body: unknown }> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest(baseUrl + path, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, timeout: 5000 })
    req.on('response', (res) => {
      readBody(res).then((body) => resolve({ status: res.statusCode ?? 0, body }), reject)
    })
    // The server may answer 413 and close before the whole body is written; only a missing answer is a failure.
    req.on('error', (error) => setTimeout(() => reject(error), 500))
    req.on('timeout', () => req.destroy(new Error('no answer to the chunked upload')))
    for (const chunk of chunks) req.write(chunk)
    req.end()
  })
}

t.test('the logger never writes credentials', async (t) => {
  const lines: string[] = []
  const sink = new Writable({ write (chunk: Buffer, _encoding, done) { lines.push(chunk.toString()); done() } })
  const log = pino(loggerOptions('info'), sink)
  log.info({ req: { method: 'GET', url: '/ws?room=a&token=sekret-token-1&x=1', headers: { authorization: 'Bearer sekret-token-2' } } }, 'request')
  log.info({ headers: { authorization: 'Bearer sekret-token-3' } }, 'headers')
  log.info({ password: 'sekret-password-1', token: 'sekret-token-4' }, 'top level')
  log.info({ body: { username: 'bob', password: 'sekret-password-2' }, login: { token: 'sekret-token-5' } }, 'nested')
  const output = lines.join('')
  t.equal(lines.length, 4, 'every line was written')
  t.notMatch(output, /sekret/, 'no token or password in the output')
  t.match(output, /\[Redacted\]/)
  // What is left must still be useful: the method, the path and the harmless query parameters.
  t.match(output, /"url":"\/ws\?room=a&token=\[Redacted\]&x=1"/)
  t.match(output, /"username":"bob"/)
  t.equal(redactUrl('/ws?token=abc'), '/ws?token=[Redacted]')
  t.equal(redactUrl('/ws?a=1&TOKEN=abc&b=2'), '/ws?a=1&TOKEN=[Redacted]&b=2')
  t.equal(redactUrl('/rooms?tokens=1'), '/rooms?tokens=1', 'only the token parameter')
})

eachBackend(t, async (t, backend) => {
  // Two servers: `main` keeps failures for the default 900 s so lockout checks are not racing a
  // clock; `small` has a 1 s window and a one-slot hasher with no queue. JWT_TTL differs from the
  // default so expiresIn is seen to follow it.
  // Started one after the other: booting two embedded databases at once on a busy machine can
  // pass Fastify's 10 s plugin timeout.
  const main = await startTestServer(t, backend, { env: { LOGIN_MAX_FAILURES: '3', JWT_TTL: '600' } })
  const small = await startTestServer(t, backend, {
    env: { LOGIN_MAX_FAILURES: '2', LOGIN_LOCKOUT: '1', HASH_CONCURRENCY: '1', HASH_QUEUE: '0' },
    scryptLogN: 15
  })
  const { api, baseUrl } = main
  const db = main.server.app.db
  // Every failed login below counts against 127.0.0.1 too (address limit: 20 x 3 = 60 per 900 s);
  // the tests stay well under it so only the per-username limit is exercised.

  t.test('register: 201 {id, username}', async (t) => {
    const username = name('Alice')
    const res = await register(api, username)
    t.equal(res.status, 201)
    t.same(Object.keys(res.body).sort(), ['id', 'username'])
    t.match(res.body.id, DECIMAL_ID, 'id is a decimal string')
    t.equal(res.body.username, username, 'username kept as sent, case included')

    const row = await storedUser(db, username)
    t.equal(row?.id, res.body.id, 'the id is the stored one')
  })

  t.test('register: boundaries of the username and password rules are accepted', async (t) => {
    const accepted = [
      { username: 'abc', password: 'p'.repeat(8) },
      { username: 'A'.repeat(32), password: 'p'.repeat(256) },
      { username: 'a.b-c_D9', password: 'pass word with spaces' },
      // Lengths count characters, not UTF-16 units or bytes: 8 emoji are 8 characters.
      { username: 'emoji_pw', password: '🔑'.repeat(8) }
    ]
    for (const body of accepted) {
      const res = await api.request('POST', '/auth/register', { json: body })
      t.equal(res.status, 201, `${body.username} / ${body.password.length} UTF-16 units`)
      t.equal(res.body.username, body.username)
    }
    t.equal((await login(api, 'emoji_pw', '🔑'.repeat(8))).status, 200, 'and the password works')
  })

  t.test('register: a taken name is 409, case-insensitively', async (t) => {
    const lower = name('bob')
    t.equal((await register(api, lower)).status, 201)
    assertError(t, await register(api, lower), 409, 'conflict', 'same name')
    assertError(t, await register(api, lower.toUpperCase(), 'another-password'), 409, 'conflict', 'other case')
    const rows = await db.selectFrom('users').select('username')
      .where((eb) => eb(eb.fn('lower', ['username']), '=', lower)).execute()
    t.same(rows, [{ username: lower }], 'one user, the first one')
    // The original password still works: the conflicting attempt changed nothing.
    t.equal((await login(api, lower)).status, 200)
  })

  t.test('register: racing registrations of one name give one 201, the rest 409', async (t) => {
    // All pass the "is it taken" lookup before any insert, so the database's unique index decides.
    const base = name('race')
    const variants = [base, base.toUpperCase(), `R${base.slice(1)}`, base]
    const results = await Promise.all(variants.map(async (variant) => await register(api, variant)))
    const statuses = results.map((res) => res.status).sort()
    t.same(statuses, [201, 409, 409, 409], statuses.join(','))
    for (const res of results.filter((res) => res.status === 409)) assertError(t, res, 409, 'conflict', 'loser')
    const rows = await db.selectFrom('users').select('id')
      .where((eb) => eb(eb.fn('lower', ['username']), '=', base)).execute()
    t.equal(rows.length, 1, 'one row')
  })

  t.test('register: invalid bodies are 400 bad_request and store nothing', async (t) => {
    const before = await countUsers(db)
    const json: Array<[string, unknown]> = [
      ['username too short', { username: 'ab', password: PASSWORD }],
      ['username too long', { username: 'a'.repeat(33), password: PASSWORD }],
      ['username empty', { username: '', password: PASSWORD }],
      ['username with a space', { username: 'bad name', password: PASSWORD }],
      ['username with a slash', { username: 'bad/name', password: PASSWORD }],
      ['username with non-ASCII letters', { username: 'ünïcode', password: PASSWORD }],
      ['username with a trailing newline', { username: 'newline\n', password: PASSWORD }],
      ['password of 7 characters', { username: 'shortpw', password: 'p'.repeat(7) }],
      ['password of 257 characters', { username: 'longpw', password: 'p'.repeat(257) }],
      ['password of 4 emoji (8 UTF-16 units)', { username: 'emojipw4', password: '🔑'.repeat(4) }],
      ['password empty', { username: 'emptypw', password: '' }],
      ['username a number', { username: 12345, password: PASSWORD }],
      ['password a boolean', { username: 'boolpw', password: true }],
      ['password a number', { username: 'numpw', password: 12345678 }],
      ['username null', { username: null, password: PASSWORD }],
      ['password an array', { username: 'arraypw', password: [PASSWORD] }],
      ['username missing', { password: PASSWORD }],
      ['password missing', { username: 'nopw' }],
      ['empty object', {}],
      ['extra field', { username: 'extrafield', password: PASSWORD, admin: true }],
      ['JSON array', [{ username: 'arraybody', password: PASSWORD }]],
      ['JSON string', 'username'],
      ['JSON number', 42]
    ]
    for (const [label, body] of json) {
      assertError(t, await api.request('POST', '/auth/register', { json: body }), 400, 'bad_request', label)
    }
    const raw: Array<[string, string | undefined, string | undefined]> = [
      ['malformed JSON', '{"username": "malformed", "password": ', 'application/json'],
      ['JSON null', 'null', 'application/json'],
      ['valid JSON sent as text/plain', JSON.stringify({ username: 'textplain', password: PASSWORD }), 'text/plain'],
      ['valid JSON sent as form data', `username=formdata&password=${PASSWORD}`, 'application/x-www-form-urlencoded'],
      ['empty body declared as JSON', '', 'application/json'],
      ['empty body, no content type', '', undefined],
      ['no body at all', undefined, undefined]
    ]
    for (const [label, body, contentType] of raw) {
      assertError(t, await rawPost(baseUrl, '/auth/register', { body, contentType }), 400, 'bad_request', label)
    }
    t.equal(await countUsers(db), before, 'no user was created')
  })

  t.test('register: a body over 64 KiB is 413 payload_too_large', async (t) => {
    const before = await countUsers(db)
    // Valid JSON, so only the size can be what is refused.
    const padded = (size: number): string => {
      const base = JSON.stringify({ username: 'bigbody', password: '' })
      return JSON.stringify({ username: 'bigbody', password: 'p'.repeat(size - base.length) })
    }
    const over = padded(64 * 1024 + 1)
    t.equal(Buffer.byteLength(over), 64 * 1024 + 1)
    assertError(t, await api.request('POST', '/auth/register', { raw: over, contentType: 'application/json' }), 413, 'payload_too_large', 'declared length')

    const chunked = await chunkedPost(baseUrl, '/auth/register', [over.slice(0, 40_000), over.slice(40_000)])
    t.equal(chunked.status, 413, 'chunked upload')
    t.same(Object.keys(chunked.body as object).sort(), ['error', 'message'])
    t.equal((chunked.body as { error: string }).error, 'payload_too_large')

    // Exactly at the limit the body is read and judged on its content (the password is too long).
    const atLimit = padded(64 * 1024)
    t.equal(Buffer.byteLength(atLimit), 64 * 1024)
    assertError(t, await api.request('POST', '/auth/register', { raw: atLimit, contentType: 'application/json' }), 400, 'bad_request', 'at the limit')

    t.equal(await countUsers(db), before, 'nothing stored')
    t.equal((await api.request('GET', '/health')).status, 200, 'the server still answers')
  })

  t.test('register: the password is stored as a scrypt PHC string', async (t) => {
    const first = name('hashed')
    const second = name('hashed')
    t.equal((await register(api, first)).status, 201)
    t.equal((await register(api, second)).status, 201)
    const a = (await storedUser(db, first))?.password_hash ?? ''
    const b = (await storedUser(db, second))?.password_hash ?? ''
    t.match(a, PHC)
    t.equal(PHC.exec(a)?.[1], '12', 'at the configured cost')
    t.notOk(a.includes(PASSWORD), 'the password itself is not stored')
    t.not(a, b, 'the same password hashes differently (salted)')
    t.not(a.split('$')[3], b.split('$')[3], 'different salts')
  })

  t.test('login: 200 {token, tokenType, expiresIn, refreshToken, refreshExpiresIn, user}', async (t) => {
    const username = name('Carol')
    const id = (await register(api, username)).body.id as string
    const res = await login(api, username)
    t.equal(res.status, 200)
    t.same(Object.keys(res.body).sort(), ['expiresIn', 'refreshExpiresIn', 'refreshToken', 'token', 'tokenType', 'user'])
    t.equal(res.body.tokenType, 'Bearer')
    t.equal(res.body.expiresIn, 600, 'expiresIn follows JWT_TTL')
    t.same(res.body.user, { id, username })
    t.match(res.body.token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'a compact JWS')
    const claims = decodeJwt(res.body.token as string).payload as { iat: number, exp: number, sub: string }
    t.equal(claims.exp - claims.iat, 600, 'the token lives JWT_TTL seconds')
    t.equal(claims.sub, id)

    const rooms = await api.request('GET', '/rooms', { token: res.body.token })
    t.equal(rooms.status, 200, 'the token authenticates')
  })

  t.test('login: the username is case-insensitive', async (t) => {
    const username = name('MixedCase')
    const id = (await register(api, username)).body.id as string
    for (const variant of [username.toLowerCase(), username.toUpperCase()]) {
      const res = await login(api, variant)
      t.equal(res.status, 200, variant)
      t.same(res.body.user, { id, username }, 'the stored name, not the typed one')
    }
  })

  t.test('login: unknown user and wrong password get the same 401', async (t) => {
    const username = name('dave')
    t.equal((await register(api, username)).status, 201)
    const wrong = await login(api, username, 'not-the-password')
    const unknown = await login(api, name('nobody'))
    for (const [label, res] of [['wrong password', wrong], ['unknown user', unknown]] as const) {
      t.equal(res.status, 401, label)
      t.same(res.body, { error: 'unauthorized', message: 'invalid username or password' }, label)
    }
    t.equal(wrong.text, unknown.text, 'byte for byte')
  })

  t.test('login: invalid bodies are 400 and do not count as failures', async (t) => {
    const username = name('erin')
    t.equal((await register(api, username)).status, 201)
    const bodies: Array<[string, unknown]> = [
      ['password missing', { username }],
      ['username missing', { password: PASSWORD }],
      ['password a number', { username, password: 12345678 }],
      ['extra field', { username, password: PASSWORD, remember: true }],
      ['password of 257 characters', { username, password: 'p'.repeat(257) }]
    ]
    for (const [label, body] of bodies) {
      assertError(t, await api.request('POST', '/auth/login', { json: body }), 400, 'bad_request', label)
    }
    assertError(t, await rawPost(baseUrl, '/auth/login', { body: '{"username":', contentType: 'application/json' }), 400, 'bad_request', 'malformed JSON')
    t.equal((await login(api, username)).status, 200, 'five bad requests did not lock the account')
  })

  t.test('login: after LOGIN_MAX_FAILURES failures, 429 with Retry-After, even with the right password', async (t) => {
    const username = name('frank')
    const other = name('grace')
    t.equal((await register(api, username)).status, 201)
    t.equal((await register(api, other)).status, 201)
    for (let i = 1; i <= 3; i++) {
      assertError(t, await login(api, username, `wrong-password-${i}`), 401, 'unauthorized', `failure ${i}`)
    }
    const locked = await login(api, username, 'wrong-password-4')
    assertError(t, locked, 429, 'rate_limited', 'fourth attempt')
    assertRetryAfter(t, locked, 900)

    const right = await login(api, username)
    assertError(t, right, 429, 'rate_limited', 'right password while locked')
    assertRetryAfter(t, right, 900)
    assertError(t, await login(api, username.toUpperCase()), 429, 'rate_limited', 'other case of the same name')

    // Another user from the same address is not affected, for failures or successes.
    assertError(t, await login(api, other, 'wrong-password'), 401, 'unauthorized', 'other user, wrong password')
    t.equal((await login(api, other)).status, 200, 'other user, right password')
  })

  t.test('login: failures for an unknown name lock that name too', async (t) => {
    // Otherwise the 429 would tell which names exist.
    const ghost = name('ghost')
    for (let i = 1; i <= 3; i++) assertError(t, await login(api, ghost), 401, 'unauthorized', `failure ${i}`)
    assertError(t, await login(api, ghost), 429, 'rate_limited', 'fourth attempt')
  })

  t.test('login: a success before the limit resets the count', async (t) => {
    const username = name('heidi')
    t.equal((await register(api, username)).status, 201)
    for (let i = 1; i <= 2; i++) t.equal((await login(api, username, 'wrong-password')).status, 401)
    t.equal((await login(api, username)).status, 200, 'success after 2 failures')
    // 4 failures in all now; without the reset the second of these would already be 429.
    for (let i = 1; i <= 2; i++) t.equal((await login(api, username, 'wrong-password')).status, 401, `failure ${i} after the reset`)
    t.equal((await login(api, username)).status, 200, 'still not locked')
  })

  t.test('login: concurrent wrong passwords cannot get past the limit', async (t) => {
    // The limit is on password checks: firing them at once must not buy more than LOGIN_MAX_FAILURES guesses.
    const username = name('ivan')
    t.equal((await register(api, username)).status, 201)
    const results = await Promise.all(Array.from({ length: 8 }, async (_, i) => await login(api, username, `guess-${i}`)))
    const statuses = results.map((res) => res.status)
    t.ok(statuses.every((status) => status === 401 || status === 429), `only 401 or 429: ${statuses.join(',')}`)
    t.equal(statuses.filter((status) => status === 401).length, 3, `exactly LOGIN_MAX_FAILURES guesses were checked: ${statuses.join(',')}`)
    assertError(t, await login(api, username), 429, 'rate_limited', 'locked afterwards')
  })

  t.test('login: a hash made at a lower cost is upgraded on the next successful login', async (t) => {
    const username = name('judy')
    const id = (await register(api, username)).body.id as string
    const weak = await createPasswordHasher({ logN: 10, concurrency: 1, queue: 0 }).hash(PASSWORD)
    t.match(weak, /^\$scrypt\$ln=10,/)
    await db.updateTable('users').set({ password_hash: weak }).where('id', '=', id).execute()

    t.equal((await login(api, username, 'wrong-password')).status, 401)
    t.equal((await storedUser(db, username))?.password_hash, weak, 'a failed login changes nothing')

    t.equal((await login(api, username)).status, 200, 'the old hash still verifies')
    const upgraded = (await storedUser(db, username))?.password_hash ?? ''
    t.match(upgraded, PHC)
    t.equal(PHC.exec(upgraded)?.[1], '12', 're-hashed at the current cost')
    t.not(upgraded, weak)

    t.equal((await login(api, username)).status, 200, 'the new hash verifies')
    t.equal((await storedUser(db, username))?.password_hash, upgraded, 'and is not re-hashed again')
  })

  t.test('login: the failure window expires after LOGIN_LOCKOUT seconds', async (t) => {
    let username = ''
    let locked: ApiResponse
    for (let attempt = 1; ; attempt++) {
      username = name('kim')
      t.equal((await register(small.api, username)).status, 201)
      const firstFailure = Date.now()
      for (let i = 1; i <= 2; i++) t.equal((await login(small.api, username, 'wrong-password')).status, 401)
      locked = await login(small.api, username)
      // On a loaded machine two scrypt hashes can outlast the 1 s window itself: then this attempt
      // shows nothing either way, and a fresh name tries again (never when it was quick).
      if (locked.status !== 200 || Date.now() - firstFailure < 1000 || attempt === 5) break
      t.comment(`attempt ${attempt}: the two failures and the check took ${Date.now() - firstFailure} ms, longer than the window`)
    }
    assertError(t, locked, 429, 'rate_limited', 'locked')
    t.equal(locked.headers.get('retry-after'), '1', 'Retry-After rounds the rest of the 1 s window up')
    await new Promise((resolve) => setTimeout(resolve, 1200))
    t.equal((await login(small.api, username)).status, 200, 'the window has passed')
  })

  t.test('hashing beyond HASH_CONCURRENCY + HASH_QUEUE is 503 with Retry-After', async (t) => {
    // One login per user: the hasher limit is global, and distinct names keep the per-name failure
    // limit (2 on this server) out of the picture whatever it does with attempts in flight.
    const people = Array.from({ length: 6 }, () => name('liam'))
    for (const person of people) t.equal((await register(small.api, person)).status, 201, `${person} registered`)

    const check = (label: string, results: ApiResponse[], success: number): void => {
      const statuses = results.map((res) => res.status)
      t.ok(statuses.every((status) => status === success || status === 503), `${label}: only ${success} or 503 (${statuses.join(',')})`)
      t.ok(statuses.includes(success), `${label}: at least one ${success}`)
      t.ok(statuses.includes(503), `${label}: at least one 503`)
      for (const res of results.filter((res) => res.status === 503)) {
        assertError(t, res, 503, 'unavailable', label)
        assertRetryAfter(t, res, 60)
      }
    }

    const logins = await Promise.all(people.map(async (person) => await login(small.api, person)))
    check('logins', logins, 200)

    const names = Array.from({ length: 8 }, () => name('burst'))
    const registers = await Promise.all(names.map(async (n) => await register(small.api, n)))
    check('registers', registers, 201)
    for (const [i, res] of registers.entries()) {
      const row = await storedUser(small.server.app.db, names[i] ?? '')
      t.equal(row !== undefined, res.status === 201, `${names[i] ?? ''}: stored only if 201`)
    }

    // 503 is back-pressure, not a failed login: nobody is locked, and every slot was released.
    for (const person of people) t.equal((await login(small.api, person)).status, 200, `${person} logs in afterwards`)
  })
})
