// The server under test for the WebSocket benches: `ws-server.ts` in its own process on 127.0.0.1,
// on an embedded database in a temporary DATA_DIR, or, given an admin DATABASE_URL, on a fresh
// Postgres database created for the run and dropped afterwards. Also the tokens its users need.
import { spawn, type ChildProcess } from 'node:child_process'
import { createHmac, randomBytes } from 'node:crypto'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { BENCH_SECRET, WS_SERVER_ENV } from './fixture.js'
import { sampleProcess } from './process-stats.js'

export interface BenchUser { readonly id: string, readonly username: string }

export interface BenchServer {
  readonly pid: number
  readonly port: number
  readonly users: readonly BenchUser[]
  /** Whether it runs on Postgres (a database of its own) rather than the embedded one. */
  readonly postgres: boolean
  /** The run database's backends (the server's pool): pid → CPU seconds; empty when embedded. */
  postgresBackends (): Promise<Map<number, number>>
  /** Runs a full garbage collection in the server (SIGUSR2; ws-server runs with --expose-gc). */
  collectGarbage (): void
  /** SIGTERM (SIGKILL after 20 s), then drops the run's database. Safe to call twice. */
  stop (): Promise<void>
}

const here = dirname(fileURLToPath(import.meta.url))
const running = new Set<ChildProcess>()
// Last resort if the bench goes down some other way: never leave a server running.
process.on('exit', () => { for (const child of running) child.kill('SIGTERM') })

interface RunDatabase { readonly admin: pg.Client, readonly name: string, readonly url: string }

async function createRunDatabase (adminUrl: string): Promise<RunDatabase> {
  const name = `chat_bench_ws_${process.pid}_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  await admin.query(`create database ${name}`)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return { admin, name, url: url.toString() }
}

async function dropRunDatabase (database: RunDatabase): Promise<void> {
  try {
    await database.admin.query(`drop database if exists ${database.name} with (force)`)
  } catch (error) {
    process.stderr.write(`dropping database ${database.name}: ${String(error)}\n`)
  }
  await database.admin.end().catch(() => {})
}

async function stopProcess (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const killer = setTimeout(() => {
    process.stderr.write('ws-server did not stop within 20 s of SIGTERM: SIGKILL\n')
    child.kill('SIGKILL')
  }, 20_000)
  await exited
  clearTimeout(killer)
}

/** Starts ws-server with `users` users seeded (`adminUrl`: a Postgres admin URL, or '' for embedded). */
export async function startBenchServer (options: { readonly users: number, readonly adminUrl: string }): Promise<BenchServer> {
  const database = options.adminUrl === '' ? null : await createRunDatabase(options.adminUrl)
  const typescript = fileURLToPath(import.meta.url).endsWith('.ts')
  const script = join(here, typescript ? 'ws-server.ts' : 'ws-server.js')
  const args = ['--expose-gc', ...(typescript ? ['--import', 'tsx'] : []), script, '--users', String(options.users)]
  const env: NodeJS.ProcessEnv = { ...WS_SERVER_ENV, ...process.env, LOG_LEVEL: 'error', DATABASE_URL: database?.url ?? '' }
  delete env.DATA_DIR // always a fresh temporary one (embedded), removed by the server when it stops
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env })
  running.add(child)
  child.once('exit', () => running.delete(child))
  let stopped: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopped ??= (async () => {
      try { await stopProcess(child) } catch (error) { process.stderr.write(`stopping ws-server: ${String(error)}\n`) }
      if (database !== null) await dropRunDatabase(database)
    })()
    await stopped
  }
  const lines = createInterface({ input: child.stdout! })
  try {
    const ready = await new Promise<{ port: number, users: BenchUser[] }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('ws-server did not start within 60 s')), 60_000)
      const onExit = (code: number | null, signal: string | null): void => {
        clearTimeout(timer)
        reject(new Error(`ws-server exited with ${code ?? signal} before it was ready`))
      }
      child.once('exit', onExit)
      lines.once('line', (line) => {
        clearTimeout(timer)
        child.off('exit', onExit)
        // Anything else the server prints on stdout goes to our stderr, out of the way of the tables.
        lines.on('line', (more) => process.stderr.write(`ws-server: ${more}\n`))
        try {
          resolve(JSON.parse(line) as { port: number, users: BenchUser[] })
        } catch {
          reject(new Error(`ws-server printed ${line}`))
        }
      })
    })
    if (ready.users.length < options.users) throw new Error(`ws-server seeded ${ready.users.length} users, expected ${options.users}`)
    return {
      pid: child.pid!,
      port: ready.port,
      users: ready.users,
      postgres: database !== null,
      collectGarbage: () => { child.kill('SIGUSR2') },
      async postgresBackends () {
        const cpu = new Map<number, number>()
        if (database === null) return cpu
        const { rows } = await database.admin.query<{ pid: number }>('select pid from pg_stat_activity where datname = $1', [database.name])
        for (const { pid } of rows) {
          try { cpu.set(pid, sampleProcess(pid).cpuSeconds) } catch { /* ended meanwhile, or another machine */ }
        }
        return cpu
      },
      stop
    }
  } catch (error) {
    await stop()
    throw error
  }
}

/** HS256, as the server verifies it: claims sub, username, exp. */
export function signToken (user: BenchUser): string {
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  const input = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub: user.id, username: user.username, iat: now, exp: now + 3600 })}`
  return `${input}.${createHmac('sha256', BENCH_SECRET).update(input).digest('base64url')}`
}

/** Runs `task` over `items`, at most `limit` at a time. */
export async function eachLimited<T> (items: readonly T[], limit: number, task: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++
      await task(items[index]!, index)
    }
  }))
}
