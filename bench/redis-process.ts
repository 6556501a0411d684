// The cluster scenario's own Redis: a `redis-server` child on a free port of 127.0.0.1 (never the
// machine's 6379), keeping nothing on disk, that the scenario can stop and start again on the same
// port to measure an outage. Also the consecutive free ports the cluster's nodes listen on.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { interrupted, trackProcess } from './server-process.js'

const READY_MS = 10_000
const STOP_GRACE_MS = 10_000

export interface RedisProcess {
  readonly port: number
  /** `redis://127.0.0.1:<port>`, for REDIS_URL. */
  readonly url: string
  /** The running process's pid, or null while stopped. */
  pid (): number | null
  /** SIGTERM, and the exit (SIGKILL after 10 s). */
  stop (): Promise<void>
  /** Starts it again on the same port; resolves once it answers PING. */
  start (): Promise<void>
  /** Stops it for good and removes its working directory. */
  close (): Promise<void>
}

/** Why the cluster scenario cannot run here for want of Redis, or null when `redis-server` is installed. */
export function redisServerMissing (): string | null {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  return probe.error === undefined && probe.status === 0 ? null : 'redis-server is not installed (the scenario starts a Redis of its own)'
}

/**
 * Ports below the kernel's ephemeral range, so no outgoing connection of this machine (the
 * generator's sockets, the nodes' Postgres pools) takes one between the probe and the listen, or
 * while Redis is stopped for the outage.
 */
function portRange (): [number, number] {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
    if (Number.isInteger(low) && low > 12_000) return [10_000, low - 1]
  } catch { /* not Linux: any port */ }
  return [20_000, 30_000]
}

async function isFree (port: number): Promise<boolean> {
  const server = createServer()
  const free = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => resolve(true))
  })
  if (free) await new Promise<void>((resolve) => server.close(() => resolve()))
  return free
}

/** The first of `count` consecutive ports that are free on 127.0.0.1 now. */
export async function freePorts (count: number): Promise<number> {
  const [low, high] = portRange()
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = low + Math.floor(Math.random() * (high - low - count))
    let all = true
    for (let port = first; port < first + count && all; port++) all = await isFree(port)
    if (all) return first
  }
  throw new Error(`no ${count} consecutive free ports on 127.0.0.1`)
}

/** One inline PING over a raw socket: true on `+PONG`. */
async function pings (port: number, ms = 500): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let reply = ''
    const done = (ok: boolean): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(ok)
    }
    const timer = setTimeout(() => done(false), ms)
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk) => {
      reply += chunk.toString()
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'))
    })
    socket.once('error', () => done(false))
  })
}

/** Starts `redis-server` on a free port and waits until it answers PING. */
export async function startRedis (): Promise<RedisProcess> {
  // Its working directory, so nothing it might write lands in the repository; gone however the run ends.
  const dir = mkdtempSync(join(tmpdir(), 'chat-bench-redis-'))
  const removeDir = (): void => { rmSync(dir, { recursive: true, force: true }) }
  process.once('exit', removeDir)
  let child: ChildProcess | null = null
  let exited: Promise<void> = Promise.resolve()
  let output = ''

  const stop = async (): Promise<void> => {
    const proc = child
    if (proc === null) return
    const wait = exited
    proc.kill('SIGTERM')
    const killer = setTimeout(() => proc.kill('SIGKILL'), STOP_GRACE_MS)
    await wait
    clearTimeout(killer)
  }

  const launch = async (port: number): Promise<void> => {
    if (interrupted()) throw new Error('the run was interrupted')
    const proc = spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--daemonize', 'no', '--dir', dir, '--loglevel', 'warning'
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    let gone = false
    exited = new Promise((resolve) => proc.once('exit', () => {
      gone = true
      if (child === proc) child = null
      resolve()
    }))
    trackProcess(proc, stop)
    for (const stream of [proc.stdout, proc.stderr]) stream?.setEncoding('utf8').on('data', (chunk: string) => { output = (output + chunk).slice(-4000) })
    proc.once('error', (error) => { output += `\nspawn error: ${error.message}` })
    const deadline = Date.now() + READY_MS
    for (;;) {
      if (gone) throw new Error(`redis-server on port ${port} exited before answering PING: ${output.trim().slice(-500)}`)
      if (await pings(port)) return
      if (Date.now() > deadline) {
        await stop()
        throw new Error(`redis-server on port ${port} did not answer PING within ${READY_MS / 1000} s`)
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  let port = 0
  for (let attempt = 1; ; attempt++) {
    port = await freePorts(1)
    try {
      await launch(port)
      break
    } catch (error) {
      // The port may have been taken between the probe and the start: try another.
      if (attempt >= 3 || interrupted()) {
        removeDir()
        process.off('exit', removeDir)
        throw error
      }
    }
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: () => child?.pid ?? null,
    stop,
    async start () {
      if (child !== null) throw new Error(`redis-server on port ${port} is already running`)
      await launch(port)
    },
    async close () {
      await stop()
      removeDir()
      process.off('exit', removeDir)
    }
  }
}
