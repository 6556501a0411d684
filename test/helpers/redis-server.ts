// A Redis server of the test's own (not the machine's shared one), so a test can stop it, start it
// again on the same port, and kill its clients without disturbing any other test file.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, realpathSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { Redis } from 'ioredis'
import { freePort } from './ports.js'

export interface RedisServer {
  readonly port: number
  /** `redis://127.0.0.1:<port>`, for REDIS_URL. */
  readonly url: string
  /** Whether the process is running (started and not yet exited). */
  running (): boolean
  /** Starts it again on the same port; resolves once it answers PING. */
  start (): Promise<void>
  /** Sends `signal` (SIGTERM unless given) and waits for the exit; SIGKILL if it is still running after 10 s. */
  stop (signal?: NodeJS.Signals): Promise<void>
  /** Runs one command through a short-lived client of its own (`command('CLIENT', 'KILL', 'TYPE', 'pubsub')`). */
  command (...args: Array<string | number>): Promise<unknown>
  /** What the process printed (its log goes to stdout): for failure messages. */
  output (): string
}

/** Why Redis-backed tests cannot run on this machine, or null when `redis-server` is there. */
export function redisServerMissing (): string | null {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  return probe.error === undefined && probe.status === 0 ? null : 'redis-server is not installed'
}

/** One inline PING over a raw socket, so a check needs no client library state: true on `+PONG`. */
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

/**
 * Starts `redis-server` as a child process (not daemonized, nothing kept on disk) on a free port
 * of 127.0.0.1 and waits until it answers PING. Whatever happens, it is killed at `t`'s teardown.
 */
export async function startRedisServer (t: Test, options: { readyMs?: number } = {}): Promise<RedisServer> {
  const readyMs = options.readyMs ?? 10_000
  // Its working directory, so nothing it might write lands in the repository.
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'chat-redis-')))
  let child: ChildProcess | null = null
  let exited: Promise<void> = Promise.resolve()
  let out = ''
  let port = 0

  const launch = async (): Promise<void> => {
    const proc = spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--daemonize', 'no', '--dir', dir, '--loglevel', 'notice'
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    let gone = false
    exited = new Promise((resolve) => proc.once('close', () => {
      gone = true
      if (child === proc) child = null
      resolve()
    }))
    proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
    proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
    proc.once('error', (error) => { out += `\nspawn error: ${error.message}` })
    const deadline = Date.now() + readyMs
    for (;;) {
      if (gone) throw new Error(`redis-server on port ${port} exited before answering PING\n${out.slice(-2000)}`)
      if (await pings(port)) return
      if (Date.now() > deadline) {
        proc.kill('SIGKILL')
        throw new Error(`redis-server on port ${port} did not answer PING within ${readyMs} ms\n${out.slice(-2000)}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    const proc = child
    if (proc === null) return
    const wait = exited
    proc.kill(signal)
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
    await wait
    clearTimeout(timer)
  }

  t.teardown(async () => {
    if (child !== null) {
      const wait = exited
      child.kill('SIGKILL')
      await wait
    }
    rmSync(dir, { recursive: true, force: true })
  })

  // The free port may be taken between the probe and the start: try a few.
  for (let attempt = 1; ; attempt++) {
    port = await freePort()
    try {
      await launch()
      break
    } catch (error) {
      if (attempt >= 3) throw error
    }
  }

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    running: () => child !== null,
    async start () {
      if (child !== null) throw new Error(`redis-server on port ${port} is already running`)
      await launch()
    },
    stop,
    async command (...args) {
      const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false })
      client.on('error', () => {})
      try {
        await client.connect()
        const [name, ...rest] = args
        return await client.call(String(name), ...rest)
      } finally {
        client.disconnect()
      }
    },
    output: () => out
  }
}
