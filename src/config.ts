import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { join, resolve } from 'node:path'
import { parseEnv } from 'node:util'
import { Type, type Static } from 'typebox'
import { Compile } from 'typebox/compile'

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/** Environment variables are strings; integers are checked as text first so `1.5` or `12abc` never slip through. */
const Int = (minimum: number, maximum: number, fallback: number, description: string) =>
  Type.String({ pattern: '^[0-9]{1,9}$', default: String(fallback), description, 'x-range': [minimum, maximum] })

/** Every variable the server reads. API.md fixes the first block; the rest are our extensions. */
export const EnvSchema = Type.Object({
  NODE_ENV: Type.String({ default: 'development' }),
  PORT: Int(0, 65535, 3000, 'the one listener (0: any free port)'),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  DATABASE_URL: Type.String({ pattern: '^$|^postgres(ql)?://', default: '', description: 'a postgres:// URL, or empty for the embedded database' }),
  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  REDIS_URL: Type.String({ pattern: '^$|^rediss?://', default: '', description: 'a redis:// URL, or empty for one node' }),
  REDIS_PREFIX: Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$', default: 'chat:', description: '1-64 of A-Z a-z 0-9 _ . : -' }),
  REDIS_PUBSUB: Type.Union([Type.Literal('classic'), Type.Literal('sharded')], { default: 'classic', description: 'classic (PUBLISH/SUBSCRIBE) or sharded (SPUBLISH/SSUBSCRIBE, Redis 7)' }),
  JWT_SECRET: Type.String({ default: '' }),
  JWT_TTL: Int(1, 31_536_000, 3600, 'seconds'),
  // From 1 like JWT_TTL, so tests can watch a refresh token expire; 10 years at most.
  REFRESH_TTL: Int(1, 315_360_000, 2_592_000, 'seconds'),
  LOG_LEVEL: Type.Union(LOG_LEVELS.map((level) => Type.Literal(level)), { default: 'info', description: `one of ${LOG_LEVELS.join(', ')}` }),
  // uWS's idleTimeout takes 8-960 s; anything else would abort the process.
  HEARTBEAT_TIMEOUT: Int(8, 960, 30, 'seconds (uWS supports 8-960)'),
  // No pattern: a value that failed one would be echoed in the error, and it is a secret.
  METRICS_TOKEN: Type.String({ default: '' }),
  DB_POOL_SIZE: Int(1, 100, 10, 'connections to DATABASE_URL'),
  LOGIN_MAX_FAILURES: Int(1, 1000, 5, 'failed logins per username and address before 429'),
  LOGIN_LOCKOUT: Int(1, 86_400, 900, 'seconds the failure count is kept'),
  HASH_CONCURRENCY: Int(1, 64, 2, 'password hashes computed at once'),
  HASH_QUEUE: Int(0, 10_000, 64, 'password hashes waiting before 503'),
  TRUST_PROXY: Type.String({ default: '', description: 'empty, true, a hop count, or a comma-separated list of proxy addresses/CIDRs' }),
  CORS_ORIGINS: Type.String({ pattern: '^(\\*|[^*]*)$', default: '*', description: '`*`, empty, or a comma-separated list of origins' }),
  WS_RATE: Int(1, 1_000_000, 50, 'frames per second one socket may send, sustained'),
  WS_BURST: Int(1, 1_000_000, 100, 'frames one socket may send at once above WS_RATE'),
  WS_MAX_BACKPRESSURE: Int(65_536, 67_108_864, 1_048_576, 'bytes queued for one socket before it is closed as too slow'),
  WRITE_MAX_BATCH: Int(1, 5000, 500, 'messages per group commit'),
  WRITE_MAX_DELAY_MS: Int(0, 1000, 0, 'milliseconds an idle writer waits for more messages (0: it writes in the next event-loop turn)'),
  WRITE_CONCURRENCY: Int(1, 32, 1, 'group commits in flight at once on DATABASE_URL, rooms partitioned among them (at most DB_POOL_SIZE - 1; the embedded database: always 1)'),
  WRITE_QUEUE_LIMIT: Int(1, 1_000_000, 10_000, 'messages waiting to be written before `unavailable`')
})
export type Env = Static<typeof EnvSchema>

export type LogLevel = typeof LOG_LEVELS[number]

export interface Config {
  readonly production: boolean
  readonly http: {
    readonly host: string
    readonly port: number
    readonly bodyLimit: number
    /** Origins browsers may call the REST API from: `*`, a list, or none (empty). */
    readonly corsOrigins: '*' | readonly string[]
    /** Which proxies' X-Forwarded-For to believe for the client address (login limits are per address). */
    readonly trustProxy: boolean | number | readonly string[]
  }
  readonly db: { readonly url: string | null, readonly dataDir: string, readonly poolSize: number }
  readonly redis: {
    readonly url: string | null
    /** Put before every key and channel, so deployments can share one Redis. */
    readonly prefix: string
    /** Sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7), for Redis Cluster. */
    readonly sharded: boolean
  }
  readonly jwt: {
    readonly secret: string
    readonly ttlSeconds: number
    /** How long each refresh token lives (every rotation issues one with the full lifetime). */
    readonly refreshTtlSeconds: number
  }
  readonly log: { readonly level: LogLevel }
  /** The bearer token `GET /metrics` requires; null: it is open. */
  readonly metrics: { readonly token: string | null }
  readonly heartbeatSeconds: number
  readonly socket: {
    /** Token bucket per socket: sustained frames/s and burst. */
    readonly rate: number
    readonly burst: number
    readonly maxBackpressure: number
  }
  readonly writer: {
    readonly maxBatch: number
    readonly maxDelayMs: number
    readonly queueLimit: number
    /** Writes in flight at once, each on its own connection; a room always uses the same one. */
    readonly concurrency: number
  }
  readonly auth: {
    /** scrypt cost as log2(N); 17 is OWASP's recommendation for r=8, p=1. */
    readonly scryptLogN: number
    readonly hashConcurrency: number
    readonly hashQueue: number
    readonly loginMaxFailures: number
    readonly loginLockoutSeconds: number
  }
}

export class ConfigError extends Error {
  readonly problems: readonly string[]
  constructor (problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

const checkEnv = Compile(EnvSchema)
const MIN_SECRET_BYTES = 32
const DEV_SECRET_FILE = 'jwt-secret'

/** Reads a `.env` file if present; the caller spreads `process.env` over it so real variables win. */
export function readEnvFile (path = '.env'): Record<string, string> {
  return existsSync(path) ? parseEnv(readFileSync(path, 'utf8')) as Record<string, string> : {}
}

/**
 * Validates the environment, lists every problem at once, and returns a frozen Config.
 * Outside production an empty JWT_SECRET is replaced by one generated once and kept in DATA_DIR.
 */
export function loadConfig (source: Readonly<Record<string, string | undefined>> = process.env): Config {
  const raw: Record<string, string> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = source[key]
    if (value !== undefined) raw[key] = value.trim()
  }
  const env = withDefaults(raw)
  const problems = [...schemaProblems(env), ...rangeProblems(env), ...trustProxyProblems(env.TRUST_PROXY)]
  const production = env.NODE_ENV === 'production'
  if (env.JWT_SECRET === '' && production) {
    problems.push('JWT_SECRET: required when NODE_ENV=production (at least 32 random bytes, e.g. `openssl rand -base64 48`)')
  } else if (env.JWT_SECRET !== '' && Buffer.byteLength(env.JWT_SECRET) < MIN_SECRET_BYTES) {
    problems.push(`JWT_SECRET: must be at least ${MIN_SECRET_BYTES} bytes`)
  }
  if (problems.length > 0) throw new ConfigError(problems)

  const dataDir = resolve(env.DATA_DIR)
  return deepFreeze({
    production,
    http: { host: env.HOST, port: Number(env.PORT), bodyLimit: 64 * 1024, corsOrigins: parseOrigins(env.CORS_ORIGINS), trustProxy: parseTrustProxy(env.TRUST_PROXY) },
    db: { url: env.DATABASE_URL === '' ? null : env.DATABASE_URL, dataDir, poolSize: Number(env.DB_POOL_SIZE) },
    redis: { url: env.REDIS_URL === '' ? null : env.REDIS_URL, prefix: env.REDIS_PREFIX, sharded: env.REDIS_PUBSUB === 'sharded' },
    jwt: { secret: env.JWT_SECRET === '' ? devSecret(dataDir) : env.JWT_SECRET, ttlSeconds: Number(env.JWT_TTL), refreshTtlSeconds: Number(env.REFRESH_TTL) },
    log: { level: env.LOG_LEVEL },
    metrics: { token: env.METRICS_TOKEN === '' ? null : env.METRICS_TOKEN },
    heartbeatSeconds: Number(env.HEARTBEAT_TIMEOUT),
    socket: { rate: Number(env.WS_RATE), burst: Number(env.WS_BURST), maxBackpressure: Number(env.WS_MAX_BACKPRESSURE) },
    writer: {
      maxBatch: Number(env.WRITE_MAX_BATCH),
      maxDelayMs: Number(env.WRITE_MAX_DELAY_MS),
      queueLimit: Number(env.WRITE_QUEUE_LIMIT),
      // PGlite runs one statement at a time over its one connection: a second lane would only queue.
      // Each write holds a connection for its whole statement, so one is always left for REST and replays.
      concurrency: env.DATABASE_URL === '' ? 1 : Math.max(1, Math.min(Number(env.WRITE_CONCURRENCY), Number(env.DB_POOL_SIZE) - 1))
    },
    auth: {
      scryptLogN: 17,
      hashConcurrency: Number(env.HASH_CONCURRENCY),
      hashQueue: Number(env.HASH_QUEUE),
      loginMaxFailures: Number(env.LOGIN_MAX_FAILURES),
      loginLockoutSeconds: Number(env.LOGIN_LOCKOUT)
    }
  })
}

function withDefaults (raw: Record<string, string>): Env {
  const env: Record<string, unknown> = {}
  for (const [key, schema] of Object.entries(EnvSchema.properties)) {
    env[key] = raw[key] ?? (schema as unknown as { default: string }).default
  }
  return env as Env
}

function schemaProblems (env: Env): string[] {
  const seen = new Set<string>()
  const problems: string[] = []
  for (const error of checkEnv.Errors(env)) {
    const key = error.instancePath.split('/')[1] ?? ''
    if (key === '' || seen.has(key)) continue
    seen.add(key)
    const schema = EnvSchema.properties[key as keyof Env] as { description?: string, 'x-range'?: [number, number] }
    const range = schema['x-range']
    const expected = range !== undefined ? `a whole number from ${range[0]} to ${range[1]}` : schema.description ?? error.message
    problems.push(`${key}: must be ${expected} (got ${JSON.stringify(env[key as keyof Env])})`)
  }
  return problems
}

function rangeProblems (env: Env): string[] {
  const problems: string[] = []
  for (const [key, schema] of Object.entries(EnvSchema.properties)) {
    const range = (schema as { 'x-range'?: [number, number] })['x-range']
    const text = env[key as keyof Env]
    if (range === undefined || !/^[0-9]{1,9}$/.test(text)) continue
    const value = Number(text)
    if (value < range[0] || value > range[1]) {
      problems.push(`${key}: must be a whole number from ${range[0]} to ${range[1]} (got ${value})`)
    }
  }
  return problems
}

function parseOrigins (value: string): '*' | string[] {
  return value === '*' ? '*' : value.split(',').map((origin) => origin.trim()).filter((origin) => origin !== '')
}

/** proxy-addr's named ranges, accepted besides addresses and CIDRs. */
const NAMED_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal'])

function trustProxyProblems (value: string): string[] {
  const setting = parseTrustProxy(value)
  if (!Array.isArray(setting)) return []
  const bad = setting.filter((entry) => {
    if (NAMED_RANGES.has(entry)) return false
    const [address = '', prefix, extra] = entry.split('/')
    const family = isIP(address)
    const maxPrefix = family === 6 ? 128 : 32
    return family === 0 || extra !== undefined || (prefix !== undefined && !(/^[0-9]{1,3}$/.test(prefix) && Number(prefix) <= maxPrefix))
  })
  return bad.length === 0 ? [] : [`TRUST_PROXY: must be empty, true, a hop count, or addresses/CIDRs (not ${bad.map((b) => JSON.stringify(b)).join(', ')})`]
}

function parseTrustProxy (value: string): boolean | number | string[] {
  if (value === '' || value === 'false') return false
  if (value === 'true') return true
  if (/^[0-9]+$/.test(value)) return Number(value)
  return value.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '')
}

function devSecret (dataDir: string): string {
  const file = join(dataDir, DEV_SECRET_FILE)
  if (existsSync(file)) {
    const secret = readFileSync(file, 'utf8').trim()
    if (Buffer.byteLength(secret) >= MIN_SECRET_BYTES) return secret
  }
  mkdirSync(dataDir, { recursive: true })
  const secret = randomBytes(48).toString('base64url')
  writeFileSync(file, `${secret}\n`, { mode: 0o600 })
  return secret
}

function deepFreeze<T extends object> (value: T): Readonly<T> {
  for (const inner of Object.values(value)) {
    if (typeof inner === 'object' && inner !== null) deepFreeze(inner)
  }
  return Object.freeze(value)
}
