import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t, { type Test } from 'tap'
import { ConfigError, loadConfig, readEnvFile } from '../../src/config.js'

const SECRET = 'unit-test-secret-that-is-32-bytes-or-more'

/** A fresh DATA_DIR per test, so a generated dev secret never lands in ./data or leaks between tests. */
function tempDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'chat-config-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The problems loadConfig reports for `env` (a valid secret unless `env` sets one). */
function problemsOf (t: Test, env: Record<string, string>): readonly string[] {
  try {
    loadConfig({ JWT_SECRET: SECRET, DATA_DIR: tempDir(t), ...env })
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  t.fail(`expected a ConfigError for ${JSON.stringify(env)}`)
  return []
}

t.test('defaults follow API.md', async (t) => {
  // DATA_DIR is the one default that touches the disk (the dev secret), so a valid secret keeps ./data untouched.
  const config = loadConfig({ JWT_SECRET: SECRET })
  t.equal(config.http.port, 3000)
  t.equal(config.http.host, '0.0.0.0')
  t.equal(config.db.dataDir, resolve('./data'))
  t.ok(config.db.dataDir.startsWith('/'), 'DATA_DIR is absolute')
  t.equal(config.db.url, null)
  t.equal(config.redis.url, null)
  t.equal(config.redis.prefix, 'chat:')
  t.equal(config.redis.sharded, false, 'classic pub/sub unless asked')
  t.equal(config.jwt.ttlSeconds, 3600)
  t.equal(config.jwt.refreshTtlSeconds, 2_592_000, 'REFRESH_TTL: 30 days')
  t.equal(config.jwt.secret, SECRET)
  t.equal(config.log.level, 'info')
  t.equal(config.heartbeatSeconds, 30)
  t.equal(config.production, false)
})

t.test('empty DATABASE_URL and REDIS_URL mean embedded and single node', async (t) => {
  const config = loadConfig({ JWT_SECRET: SECRET, DATABASE_URL: '', REDIS_URL: '' })
  t.equal(config.db.url, null)
  t.equal(config.redis.url, null)
})

t.test('valid values are taken', async (t) => {
  const dir = tempDir(t)
  const config = loadConfig({
    JWT_SECRET: SECRET,
    PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: dir,
    DATABASE_URL: 'postgres://u:p@db:5432/chat',
    REDIS_URL: 'rediss://cache:6380',
    REDIS_PREFIX: 'eu-1:chat.',
    REDIS_PUBSUB: 'sharded',
    JWT_TTL: '60',
    REFRESH_TTL: '86400',
    LOG_LEVEL: 'silent',
    HEARTBEAT_TIMEOUT: '9'
  })
  t.equal(config.http.port, 0)
  t.equal(config.http.host, '127.0.0.1')
  t.equal(config.db.dataDir, dir)
  t.equal(config.db.url, 'postgres://u:p@db:5432/chat')
  t.equal(config.redis.url, 'rediss://cache:6380')
  t.equal(config.redis.prefix, 'eu-1:chat.')
  t.equal(config.redis.sharded, true)
  t.equal(config.jwt.ttlSeconds, 60)
  t.equal(config.jwt.refreshTtlSeconds, 86400)
  t.equal(config.log.level, 'silent')
  t.equal(config.heartbeatSeconds, 9)
})

t.test('the returned config is deeply frozen', async (t) => {
  const config = loadConfig({ JWT_SECRET: SECRET })
  t.ok(Object.isFrozen(config))
  for (const key of ['http', 'db', 'redis', 'jwt', 'log', 'auth'] as const) {
    t.ok(Object.isFrozen(config[key]), `${key} is frozen`)
  }
  // ESM is strict mode: writing to a frozen object throws rather than being ignored.
  t.throws(() => { (config.http as { port: number }).port = 1 }, TypeError)
  t.equal(config.http.port, 3000)
})

t.test('the default scrypt cost is OWASP\'s log2(N) = 17', async (t) => {
  t.equal(loadConfig({ JWT_SECRET: SECRET }).auth.scryptLogN, 17)
})

t.test('each invalid variable gives one problem naming it', async (t) => {
  const cases: Array<[string, string]> = [
    ['PORT', 'abc'],
    ['PORT', '1.5'],
    ['PORT', '-1'],
    ['PORT', '70000'],
    ['JWT_TTL', '0'],
    ['JWT_TTL', '12abc'],
    ['REFRESH_TTL', '0'],
    ['REFRESH_TTL', '315360001'],
    ['REFRESH_TTL', '1.5'],
    ['REFRESH_TTL', '30d'],
    ['HEARTBEAT_TIMEOUT', '0'],
    ['HEARTBEAT_TIMEOUT', '7'],
    ['HEARTBEAT_TIMEOUT', '961'],
    ['LOG_LEVEL', 'loud'],
    ['DATABASE_URL', 'mysql://x'],
    ['REDIS_URL', 'http://x'],
    ['REDIS_PREFIX', ''],
    ['REDIS_PREFIX', 'has space'],
    ['REDIS_PUBSUB', 'cluster'],
    ['JWT_SECRET', 'too-short']
  ]
  for (const [name, value] of cases) {
    const problems = problemsOf(t, { [name]: value })
    t.equal(problems.length, 1, `${name}=${value}: one problem (${JSON.stringify(problems)})`)
    t.match(problems[0], new RegExp(`^${name}: `), `${name}=${value}: the line names ${name}`)
    t.notOk(problems[0]?.includes('\n'), `${name}=${value}: a single line`)
  }
})

t.test('the message and problems say what is expected', async (t) => {
  t.match(problemsOf(t, { PORT: '70000' })[0], /0 to 65535/)
  t.match(problemsOf(t, { LOG_LEVEL: 'loud' })[0], /info/)
  t.match(problemsOf(t, { JWT_SECRET: 'x'.repeat(31) })[0], /32 bytes/)
  try {
    loadConfig({ JWT_SECRET: SECRET, PORT: 'abc' })
    t.fail('should throw')
  } catch (error) {
    t.type(error, ConfigError)
    t.match((error as Error).message, /PORT/)
  }
})

t.test('a 32-byte secret is enough; multi-byte characters count as bytes', async (t) => {
  t.equal(loadConfig({ JWT_SECRET: 'x'.repeat(32) }).jwt.secret, 'x'.repeat(32))
  // 16 characters, 32 bytes in UTF-8.
  t.equal(loadConfig({ JWT_SECRET: 'é'.repeat(16) }).jwt.secret, 'é'.repeat(16))
  t.equal(problemsOf(t, { JWT_SECRET: 'é'.repeat(15) }).length, 1)
})

t.test('several bad variables are all listed at once', async (t) => {
  const problems = problemsOf(t, { PORT: 'abc', JWT_TTL: '0', LOG_LEVEL: 'loud', DATABASE_URL: 'mysql://x', REDIS_URL: 'http://x', JWT_SECRET: 'short' })
  t.equal(problems.length, 6, JSON.stringify(problems))
  for (const name of ['PORT', 'JWT_TTL', 'LOG_LEVEL', 'DATABASE_URL', 'REDIS_URL', 'JWT_SECRET']) {
    t.equal(problems.filter((p) => p.startsWith(`${name}: `)).length, 1, `${name} listed once`)
  }
})

t.test('production without JWT_SECRET refuses, naming JWT_SECRET', async (t) => {
  const dir = tempDir(t)
  const problems = problemsOf(t, { NODE_ENV: 'production', JWT_SECRET: '', DATA_DIR: dir })
  t.equal(problems.length, 1)
  t.match(problems[0], /^JWT_SECRET: /)
  t.throws(() => readFileSync(join(dir, 'jwt-secret')), 'no secret generated in production')
  t.equal(loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET }).production, true)
})

t.test('outside production an empty JWT_SECRET is generated once and kept in DATA_DIR', async (t) => {
  const dir = tempDir(t)
  const first = loadConfig({ DATA_DIR: dir })
  t.ok(Buffer.byteLength(first.jwt.secret) >= 32, 'long enough')
  const file = join(dir, 'jwt-secret')
  t.equal(readFileSync(file, 'utf8').trim(), first.jwt.secret)
  t.equal(statSync(file).mode & 0o777, 0o600, 'readable by the owner only')
  t.equal(loadConfig({ DATA_DIR: dir, JWT_SECRET: '' }).jwt.secret, first.jwt.secret, 'the same secret on the next start')
  const other = loadConfig({ DATA_DIR: tempDir(t) })
  t.not(other.jwt.secret, first.jwt.secret, 'another DATA_DIR gets its own secret')
})

t.test('a DATA_DIR that does not exist yet is created for the secret', async (t) => {
  const dir = join(tempDir(t), 'nested', 'data')
  const config = loadConfig({ DATA_DIR: dir })
  t.equal(readFileSync(join(dir, 'jwt-secret'), 'utf8').trim(), config.jwt.secret)
})

t.test('readEnvFile parses a file and a missing file is empty', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, '.env')
  writeFileSync(file, '# comment\nPORT=4000\nHOST=127.0.0.1\nJWT_SECRET="quoted value with spaces"\nEMPTY=\n')
  t.same(readEnvFile(file), { PORT: '4000', HOST: '127.0.0.1', JWT_SECRET: 'quoted value with spaces', EMPTY: '' })
  t.same(readEnvFile(join(dir, 'missing.env')), {})
})

t.test('real variables spread over the file win', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, '.env')
  writeFileSync(file, `PORT=4000\nLOG_LEVEL=debug\nJWT_SECRET=${SECRET}\nDATA_DIR=${dir}\n`)
  const config = loadConfig({ ...readEnvFile(file), PORT: '5000' })
  t.equal(config.http.port, 5000)
  t.equal(config.log.level, 'debug')
})

t.test('CORS_ORIGINS: `*` by default, a trimmed list, or empty for none', async (t) => {
  const at = (value?: string): unknown => loadConfig({ JWT_SECRET: SECRET, ...(value === undefined ? {} : { CORS_ORIGINS: value }) }).http.corsOrigins
  t.equal(at(), '*')
  t.same(at(' https://a.example , http://localhost:5173,'), ['https://a.example', 'http://localhost:5173'])
  t.same(at(''), [])
  t.match(problemsOf(t, { CORS_ORIGINS: 'https://a.example,*' }).join('\n'), /CORS_ORIGINS/)
})

t.test('TRUST_PROXY: off by default; true, a hop count, or a list of addresses', async (t) => {
  const at = (value?: string): unknown => loadConfig({ JWT_SECRET: SECRET, ...(value === undefined ? {} : { TRUST_PROXY: value }) }).http.trustProxy
  t.equal(at(), false)
  t.equal(at('false'), false)
  t.equal(at('true'), true)
  t.equal(at('2'), 2)
  t.same(at('10.0.0.0/8, 127.0.0.1'), ['10.0.0.0/8', '127.0.0.1'])
  t.match(problemsOf(t, { TRUST_PROXY: 'everyone' }).join('\n'), /TRUST_PROXY/)
})

t.test('TRUST_PROXY entries must be addresses, CIDRs or named ranges', async (t) => {
  t.same(loadConfig({ JWT_SECRET: SECRET, TRUST_PROXY: 'loopback, ::1, fd00::/8, 192.168.0.0/16' }).http.trustProxy, ['loopback', '::1', 'fd00::/8', '192.168.0.0/16'])
  for (const value of ['abc', '10.0.0.0/33', '10.0.0.1/8/1', 'not a host']) {
    t.match(problemsOf(t, { TRUST_PROXY: value }).join('\n'), /TRUST_PROXY/, value)
  }
})

t.test('short lifetimes are allowed (tests of expiry and heartbeats use them)', async (t) => {
  const config = loadConfig({ JWT_SECRET: SECRET, JWT_TTL: '1', REFRESH_TTL: '1', HEARTBEAT_TIMEOUT: '8' })
  t.equal(config.jwt.ttlSeconds, 1)
  t.equal(config.jwt.refreshTtlSeconds, 1)
  t.equal(loadConfig({ JWT_SECRET: SECRET, REFRESH_TTL: '315360000' }).jwt.refreshTtlSeconds, 315_360_000, 'REFRESH_TTL up to ten years')
  t.equal(config.heartbeatSeconds, 8, 'the shortest heartbeat uWS supports')
  t.equal(loadConfig({ JWT_SECRET: SECRET, HEARTBEAT_TIMEOUT: '960' }).heartbeatSeconds, 960, 'the longest')
})

t.test('WRITE_CONCURRENCY: one group commit in flight unless asked, at most DB_POOL_SIZE - 1, always 1 on the embedded database', async (t) => {
  const dir = tempDir(t)
  const url = 'postgres://u:p@db:5432/chat'
  const concurrency = (env: Record<string, string>): number => loadConfig({ JWT_SECRET: SECRET, DATA_DIR: dir, ...env }).writer.concurrency
  t.equal(concurrency({ DATABASE_URL: url }), 1)
  t.equal(concurrency({ DATABASE_URL: url, WRITE_CONCURRENCY: '4' }), 4)
  t.equal(concurrency({ DATABASE_URL: url, WRITE_CONCURRENCY: '8', DB_POOL_SIZE: '4' }), 3, 'one connection is left for REST and replays')
  t.equal(concurrency({ DATABASE_URL: url, WRITE_CONCURRENCY: '2', DB_POOL_SIZE: '1' }), 1, 'a pool of one still writes')
  t.equal(concurrency({ WRITE_CONCURRENCY: '8' }), 1, 'embedded: one')
  t.equal(loadConfig({ JWT_SECRET: SECRET, DATA_DIR: dir }).writer.maxDelayMs, 0, 'an idle writer writes in the next turn by default')
  t.equal(problemsOf(t, { DATABASE_URL: url, WRITE_CONCURRENCY: '0' }).length, 1, 'at least one')
  t.equal(problemsOf(t, { DATABASE_URL: url, WRITE_CONCURRENCY: '33' }).length, 1, 'at most 32')
})
