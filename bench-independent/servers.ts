// Starting the servers under test: ours as shipped (`node dist/src/server.js`, a black box driven
// through its public contract) and the two hand-written peers.
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, startProcess, waitForHttp, type Started } from './processes.js'
import { signToken } from './jwt.js'

export const repoRoot = fileURLToPath(new URL('..', import.meta.url))
export const serverEntry = join(repoRoot, 'dist', 'src', 'server.js')

export interface Running {
  process: Started
  baseUrl: string
  wsUrl: string
}

// Every variable of .env.example: the server under test gets only the values set here, never
// whatever the calling shell happens to export.
const serverVariables = [
  'PORT', 'HOST', 'DATABASE_URL', 'DATA_DIR', 'REDIS_URL', 'JWT_SECRET', 'JWT_TTL', 'REFRESH_TTL',
  'LOG_LEVEL', 'HEARTBEAT_TIMEOUT', 'NODE_ENV', 'METRICS_TOKEN', 'DB_POOL_SIZE', 'LOGIN_MAX_FAILURES',
  'LOGIN_LOCKOUT', 'HASH_CONCURRENCY', 'HASH_QUEUE', 'CORS_ORIGINS', 'TRUST_PROXY', 'WS_RATE',
  'WS_BURST', 'WS_MAX_BACKPRESSURE', 'REDIS_PREFIX', 'REDIS_PUBSUB', 'WRITE_MAX_BATCH',
  'WRITE_MAX_DELAY_MS', 'WRITE_QUEUE_LIMIT'
]

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const name of serverVariables) delete env[name]
  return { ...env, ...extra }
}

export function newSecret(): string {
  return randomBytes(48).toString('base64url')
}

export interface OursOptions {
  databaseUrl: string
  dataDir: string
  logFile: string
  logLevel: string
}

/**
 * Our server with its defaults except: production mode with a fixed secret, Postgres, and the
 * per-socket frame rate limit (WS_RATE/WS_BURST, 50/s by default) lifted so that 200 sockets can
 * carry the ramp's rates; every other knob (pool of 10, group commit, queue limit) as shipped.
 */
export async function startOurs(options: OursOptions): Promise<Running> {
  const port = await freePort()
  const started = startProcess('our server', process.execPath, [serverEntry], {
    cwd: repoRoot,
    logFile: options.logFile,
    env: cleanEnv({
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: options.databaseUrl,
      DATA_DIR: options.dataDir,
      JWT_SECRET: newSecret(),
      NODE_ENV: 'production',
      LOG_LEVEL: options.logLevel,
      WS_RATE: '100000',
      WS_BURST: '100000'
    })
  })
  const baseUrl = `http://127.0.0.1:${port}`
  await waitForHttp(`${baseUrl}/ready`, started, 60_000)
  return { process: started, baseUrl, wsUrl: `ws://127.0.0.1:${port}/ws` }
}

export async function startPeer(kind: 'ingest' | 'history', databaseUrl: string, secret: string, logFile: string): Promise<Running> {
  const port = await freePort()
  const file = join(repoRoot, 'bench-independent', 'peers', `${kind}-peer.ts`)
  if (!existsSync(file)) throw new Error(`missing ${file}`)
  const started = startProcess(`${kind} peer`, process.execPath, ['--import', 'tsx', file], {
    cwd: repoRoot,
    logFile,
    env: cleanEnv({ PORT: String(port), DATABASE_URL: databaseUrl, JWT_SECRET: secret, NODE_ENV: 'production' })
  })
  const baseUrl = `http://127.0.0.1:${port}`
  await waitForHttp(`${baseUrl}/health`, started, 30_000)
  return { process: started, baseUrl, wsUrl: `ws://127.0.0.1:${port}/ws` }
}

export function peerToken(secret: string, userId: string, username: string): string {
  return signToken({ sub: userId, username, exp: Math.floor(Date.now() / 1000) + 3600 }, secret)
}

async function call(baseUrl: string, method: string, path: string, body: unknown, token?: string): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      'content-type': 'application/json',
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` })
    },
    body: JSON.stringify(body)
  })
  const text = await res.text()
  let json: unknown = null
  try {
    json = JSON.parse(text)
  } catch {
    json = text
  }
  return { status: res.status, json }
}

/** Registers and logs in one user on our server (two scrypt hashes); returns its access token. */
export async function ourToken(baseUrl: string, username: string): Promise<string> {
  const password = newSecret()
  const registered = await call(baseUrl, 'POST', '/auth/register', { username, password })
  if (registered.status !== 201) throw new Error(`register: ${registered.status} ${JSON.stringify(registered.json)}`)
  const login = await call(baseUrl, 'POST', '/auth/login', { username, password })
  const token = (login.json as { token?: unknown } | null)?.token
  if (login.status !== 200 || typeof token !== 'string') throw new Error(`login: ${login.status} ${JSON.stringify(login.json)}`)
  return token
}

/** Creates public rooms on our server, ten requests at a time. */
export async function createOurRooms(baseUrl: string, token: string, rooms: string[]): Promise<void> {
  for (let i = 0; i < rooms.length; i += 10) {
    await Promise.all(rooms.slice(i, i + 10).map(async (id) => {
      const created = await call(baseUrl, 'POST', '/rooms', { id }, token)
      if (created.status !== 201) throw new Error(`POST /rooms ${id}: ${created.status} ${JSON.stringify(created.json)}`)
    }))
  }
}
