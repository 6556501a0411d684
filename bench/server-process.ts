// The servers under test, each in its own process on 127.0.0.1: ours (`ws-server.ts`, `rest-server.ts`)
// and the peers (`peers/`). Ours runs on an embedded database in a temporary DATA_DIR or, given an
// admin DATABASE_URL, on a fresh Postgres database created for the run and dropped afterwards; so
// does the Socket.IO peer that stores messages. Also the tokens the load generator's users carry:
// signed with the bench's secret and the claims ours prints when ready (the database it is bound to).
import { spawn, type ChildProcess } from 'node:child_process'
import { createHmac, randomBytes } from 'node:crypto'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import type { Percentiles, ServerName, WebSocketServerName } from './report/results.js'
import { BENCH_SECRET, WS_SERVER_ENV, WS_USER_PREFIX } from './fixture.js'
import { sampleProcess } from './process-stats.js'
import type { BenchAnswer, BenchRequest } from './server-lifecycle.js'

export interface BenchUser { readonly id: string, readonly username: string }

/** How a server's sockets talk: our JSON frames (ours and raw uWS) or Socket.IO's packets. */
export type Protocol = 'chat' | 'socketio'

export interface BenchProcess {
  readonly pid: number
  /** The line the process printed when ready, parsed. */
  readonly ready: Record<string, unknown>
  /** Runs a full garbage collection in it (SIGUSR2; bench servers run with --expose-gc). */
  collectGarbage (): void
  /** SIGTERM (SIGKILL after 20 s). Safe to call twice. */
  stop (): Promise<void>
  /** Asks the process over IPC (server-lifecycle.ts `RequestHandlers`); null for a name it has no handler for. */
  request (name: string): Promise<unknown>
}

/** Event-loop delay over a stretch of time, measured inside the server process (ours: bench/ws-server.ts). */
export type LoopDelayProbe = () => Promise<{ end (): Promise<Percentiles> }>

export interface BenchServer extends BenchProcess {
  readonly name: ServerName
  readonly protocol: Protocol
  readonly port: number
  readonly users: readonly BenchUser[]
  /** Claims its tokens carry besides the user and the times (ours: the database's audience); {} for the peers. */
  readonly tokenClaims: Readonly<Record<string, unknown>>
  /** Whether it stores on Postgres (a database of its own) rather than an embedded one or none. */
  readonly postgres: boolean
  /** The run database's backends: pid → CPU seconds; empty without a Postgres database. */
  readonly postgresBackends: () => Promise<Map<number, number>>
  /** Ours only: its event-loop delay over a step. */
  readonly eventLoopDelay?: LoopDelayProbe
}

const here = dirname(fileURLToPath(import.meta.url))
const typescript = fileURLToPath(import.meta.url).endsWith('.ts')
/** Each server process still running, with its once-only stop. */
const running = new Map<ChildProcess, () => Promise<void>>()
// Last resort if the bench goes down some other way: never leave a server running.
process.on('exit', () => { for (const child of running.keys()) child.kill('SIGTERM') })

const STOP_GRACE_MS = 20_000
const START_TIMEOUT_MS = 90_000

async function stopProcess (child: ChildProcess, name: string): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const killer = setTimeout(() => {
    process.stderr.write(`${name} did not stop within ${STOP_GRACE_MS / 1000} s of SIGTERM: SIGKILL\n`)
    child.kill('SIGKILL')
  }, STOP_GRACE_MS)
  await exited
  clearTimeout(killer)
}

/**
 * Keeps `stop` for an interrupt (`abandonRun`) until `child` exits: for processes the bench starts
 * other than through `spawnBenchProcess` (the cluster's redis-server).
 */
export function trackProcess (child: ChildProcess, stop: () => Promise<void>): void {
  if (child.exitCode !== null || child.signalCode !== null) return
  running.set(child, stop)
  child.once('exit', () => running.delete(child))
}

/** Whether the run was interrupted: nothing more may be started. */
export function interrupted (): boolean { return abandoned }

/** Starts `script` (relative to bench/, without extension) and waits for its JSON ready line. */
export async function spawnBenchProcess (script: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<BenchProcess> {
  if (abandoned) throw new Error('the run was interrupted')
  const file = join(here, `${script}${typescript ? '.ts' : '.js'}`)
  const child = spawn(process.execPath, ['--expose-gc', ...(typescript ? ['--import', 'tsx'] : []), file, ...args], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'], env })
  let stopped: Promise<void> | undefined
  const stop = async (): Promise<void> => { await (stopped ??= stopProcess(child, script)) }
  running.set(child, stop)
  child.once('exit', () => running.delete(child))
  const lines = createInterface({ input: child.stdout! })
  try {
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${script} did not start within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS)
      const onExit = (code: number | null, signal: string | null): void => {
        clearTimeout(timer)
        reject(new Error(`${script} exited with ${code ?? signal} before it was ready`))
      }
      child.once('exit', onExit)
      lines.once('line', (line) => {
        clearTimeout(timer)
        child.off('exit', onExit)
        // Anything else it prints on stdout goes to our stderr, out of the way of the tables.
        lines.on('line', (more) => process.stderr.write(`${script}: ${more}\n`))
        try {
          resolve(JSON.parse(line) as Record<string, unknown>)
        } catch {
          reject(new Error(`${script} printed ${line}`))
        }
      })
    })
    return { pid: child.pid!, ready, collectGarbage: () => { child.kill('SIGUSR2') }, stop, request: requester(child, script) }
  } catch (error) {
    await stop()
    throw error
  }
}

const REQUEST_TIMEOUT_MS = 10_000

/** `BenchProcess.request` over `child`'s IPC channel: answers matched to requests by id. */
function requester (child: ChildProcess, script: string): (name: string) => Promise<unknown> {
  const waiting = new Map<number, (value: unknown) => void>()
  let ids = 0
  child.on('message', (answer: BenchAnswer) => {
    waiting.get(answer.id)?.(answer.value)
    waiting.delete(answer.id)
  })
  return async (name) => await new Promise((resolve, reject) => {
    const id = ++ids
    const timer = setTimeout(() => {
      waiting.delete(id)
      reject(new Error(`${script} did not answer ${name} within ${REQUEST_TIMEOUT_MS / 1000} s`))
    }, REQUEST_TIMEOUT_MS)
    waiting.set(id, (value) => { clearTimeout(timer); resolve(value) })
    const request: BenchRequest = { id, name }
    // With a callback, a channel already closed (the process died) rejects instead of emitting 'error'.
    child.send(request, (error) => {
      if (error === null) return
      clearTimeout(timer)
      waiting.delete(id)
      reject(new Error(`${script}: ${name}: ${error.message}`))
    })
  })
}

export interface RunDatabase { readonly admin: pg.Client, readonly name: string, readonly url: string }

/** Every run database not yet dropped, with its drop once one has started. */
const liveDatabases = new Map<RunDatabase, Promise<void> | null>()
let abandoned = false

export async function createRunDatabase (adminUrl: string): Promise<RunDatabase> {
  if (abandoned) throw new Error('the run was interrupted')
  const name = `chat_bench_${process.pid}_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  const database = { admin, name, url: url.toString() }
  // Known before it exists: an interrupt during the create still drops it (queued behind it).
  liveDatabases.set(database, null)
  try {
    await admin.query(`create database ${name}`)
  } catch (error) {
    liveDatabases.delete(database)
    await admin.end().catch(() => {})
    throw error
  }
  return database
}

/** Drops it once, however many callers ask (a stop and an interrupt, say). */
export async function dropRunDatabase (database: RunDatabase): Promise<void> {
  if (!liveDatabases.has(database)) return
  let dropping = liveDatabases.get(database)
  if (dropping == null) {
    dropping = (async () => {
      try {
        await database.admin.query(`drop database if exists ${database.name} with (force)`)
      } catch (error) {
        process.stderr.write(`dropping database ${database.name}: ${String(error)}\n`)
      }
      await database.admin.end().catch(() => {})
      liveDatabases.delete(database)
    })()
    liveDatabases.set(database, dropping)
  }
  await dropping
}

/** For an interrupted run: stops every server still running, then drops every run database left. */
export async function abandonRun (): Promise<void> {
  abandoned = true
  await Promise.all([...running.values()].map(async (stop) => { await stop() }))
  await Promise.all([...liveDatabases.keys()].map(dropRunDatabase))
}

/** What the server is seeded with: `users` users, and (ours only) read rooms for the reads scenario. */
export interface BenchSeed {
  readonly users: number
  /** The first `rooms` users each get a room of `messages` messages written by them (bench/fixture.ts wsReadRoom). */
  readonly readRooms?: { readonly rooms: number, readonly messages: number }
}

const SCRIPTS: Readonly<Record<WebSocketServerName, { script: string, args: (seed: BenchSeed) => string[], stores: boolean }>> = {
  chat: {
    script: 'ws-server',
    args: ({ users, readRooms }) => ['--users', String(users), ...(readRooms === undefined ? [] : ['--read-rooms', String(readRooms.rooms), '--read-messages', String(readRooms.messages)])],
    stores: true
  },
  'uws-raw': { script: 'peers/uws-raw', args: () => [], stores: false },
  socketio: { script: 'peers/socketio', args: () => [], stores: false },
  'uws-pg-insert': { script: 'peers/uws-pg-insert', args: ({ users }) => ['--users', String(users)], stores: true }
}

const PROTOCOLS: Readonly<Record<keyof typeof SCRIPTS, Protocol>> = { chat: 'chat', 'uws-raw': 'chat', socketio: 'socketio', 'uws-pg-insert': 'chat' }

/**
 * Starts one WebSocket server with `users` users its clients can be (`adminUrl`: a Postgres admin
 * URL, or '' for embedded storage). Ours seeds them in its database; the peers have no user table,
 * so theirs are made up, with the same names.
 */
export async function startBenchServer (name: keyof typeof SCRIPTS, options: BenchSeed & { readonly adminUrl: string }): Promise<BenchServer> {
  const { script, args, stores } = SCRIPTS[name]
  const database = stores && options.adminUrl !== '' ? await createRunDatabase(options.adminUrl) : null
  const env: NodeJS.ProcessEnv = { ...WS_SERVER_ENV, ...process.env, LOG_LEVEL: 'error', DATABASE_URL: database?.url ?? '' }
  delete env.DATA_DIR // always a fresh temporary one (embedded), removed by the server when it stops
  let child: BenchProcess
  try {
    child = await spawnBenchProcess(script, args(options), env)
  } catch (error) {
    if (database !== null) await dropRunDatabase(database)
    throw error
  }
  const users = (child.ready.users as BenchUser[] | undefined) ??
    Array.from({ length: options.users }, (_, i) => ({ id: String(i + 1), username: `${WS_USER_PREFIX}${i}` }))
  let stopped: Promise<void> | undefined
  return {
    ...child,
    name,
    protocol: PROTOCOLS[name],
    port: child.ready.port as number,
    users,
    tokenClaims: tokenClaims(child),
    postgres: database !== null,
    postgresBackends: async () => database === null ? new Map<number, number>() : await databaseBackends(database),
    ...(name === 'chat' ? { eventLoopDelay: loopDelayProbe(child) } : {}),
    async stop () {
      await (stopped ??= (async () => {
        await child.stop()
        if (database !== null) await dropRunDatabase(database)
      })())
    }
  }
}

/**
 * One node of ours for the cluster scenario, on a run database it shares with other nodes (and does
 * not drop when it stops), on `port`, with Redis at `redisUrl` ('' for none). `seed`: the first node
 * inserts the users and rooms; the others read the users back.
 */
export async function startChatNode (options: {
  readonly users: number, readonly database: RunDatabase, readonly port: number, readonly seed: boolean, readonly redisUrl: string
}): Promise<BenchServer> {
  const { database } = options
  const env: NodeJS.ProcessEnv = { ...WS_SERVER_ENV, ...process.env, LOG_LEVEL: 'error', DATABASE_URL: database.url, REDIS_URL: options.redisUrl }
  delete env.DATA_DIR
  const child = await spawnBenchProcess('ws-server', ['--users', String(options.users), '--port', String(options.port), '--seed', options.seed ? 'yes' : 'no'], env)
  return {
    ...child,
    name: 'chat',
    protocol: 'chat',
    port: child.ready.port as number,
    users: child.ready.users as BenchUser[],
    tokenClaims: tokenClaims(child),
    postgres: true,
    postgresBackends: async () => await databaseBackends(database)
  }
}

/** Starts the server's event-loop delay histogram (bench/ws-server.ts), and reads and stops it at `end`. */
function loopDelayProbe (child: BenchProcess): LoopDelayProbe {
  return async () => {
    await child.request('loop-delay:start')
    return { end: async () => await child.request('loop-delay:stop') as Percentiles }
  }
}

/** The run database's backends (every server process using it): pid → CPU seconds. */
export async function databaseBackends (database: RunDatabase): Promise<Map<number, number>> {
  const cpu = new Map<number, number>()
  const { rows } = await database.admin.query<{ pid: number }>('select pid from pg_stat_activity where datname = $1', [database.name])
  for (const { pid } of rows) {
    try { cpu.set(pid, sampleProcess(pid).cpuSeconds) } catch { /* ended meanwhile */ }
  }
  return cpu
}

function tokenClaims (child: BenchProcess): Record<string, unknown> {
  return (child.ready.tokenClaims as Record<string, unknown> | undefined) ?? {}
}

/**
 * HS256, as our server (and the Socket.IO peer) verify it: claims sub, username, exp, and the
 * server's own (`BenchServer.tokenClaims`).
 */
export function signToken (user: BenchUser, claims: Readonly<Record<string, unknown>>): string {
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  const input = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ ...claims, sub: user.id, username: user.username, iat: now, exp: now + 3600 })}`
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
