import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { EnvSchema } from '../../src/config.js'

/** The repository root, where `node --import tsx src/server.ts` is run from. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const ENTRY = fileURLToPath(new URL('../../src/server.ts', import.meta.url))
/** tsx's loader as a file URL, for processes whose cwd cannot resolve the bare name `tsx`. */
export const TSX_LOADER = import.meta.resolve('tsx')

/** One pino line from the server's stdout. */
export interface LogLine {
  readonly level: number
  readonly msg: string
  readonly [key: string]: unknown
}

export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface ServerProcess {
  readonly child: ChildProcess
  /** Every JSON line written to stdout so far. */
  readonly logs: readonly LogLine[]
  stdout (): string
  stderr (): string
  /** The port from the "listening on" line; rejects if the process exits first or `ms` pass. */
  listening (ms?: number): Promise<number>
  /** How the process ended; rejects if it is still running after `ms`. */
  exited (ms?: number): Promise<Exit>
  /** Sends a signal and waits for the exit. */
  stop (signal: NodeJS.Signals, ms?: number): Promise<Exit>
}

export interface SpawnOptions {
  /** Server configuration; nothing of the test runner's own environment reaches the server. */
  readonly env: Record<string, string>
  readonly cwd?: string
  /** What `--import` gets: `tsx` (resolved from `cwd`, as a user types it) or a file URL. */
  readonly loader?: string
  /** The entry file as given to node; relative to `cwd`. */
  readonly entry?: string
}

/** Variables of the runner (tap's loaders in NODE_OPTIONS, its TAP_* settings) or of the config, which a test sets itself. */
const SCRUBBED = new Set([...Object.keys(EnvSchema.properties), 'NODE_OPTIONS'])

function baseEnv (): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || SCRUBBED.has(key) || key.startsWith('TAP') || key.startsWith('_TAPJS')) continue
    env[key] = value
  }
  return env
}

/**
 * Starts the real entry point as a user would (`node --import tsx src/server.ts`). The process is
 * SIGKILLed at teardown if still running, so a failed assertion never leaves a server behind.
 */
export function spawnServer (t: Test, options: SpawnOptions): ServerProcess {
  const child = spawn(process.execPath, ['--import', options.loader ?? 'tsx', options.entry ?? 'src/server.ts'], {
    cwd: options.cwd ?? ROOT,
    env: { ...baseEnv(), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  let pending = ''
  const logs: LogLine[] = []
  const listeners = new Set<() => void>()
  const changed = (): void => { for (const listener of listeners) listener() }

  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk
    pending += chunk
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) {
      try {
        const parsed: unknown = JSON.parse(line)
        if (typeof parsed === 'object' && parsed !== null && 'msg' in parsed) logs.push(parsed as LogLine)
      } catch {
        // Not a log line (a stray console.log); kept in stdout() only.
      }
    }
    changed()
  })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { err += chunk; changed() })

  let exit: Exit | null = null
  const exitedPromise = new Promise<void>((resolve) => {
    // 'close', not 'exit': it comes after stdout and stderr are drained, so the last log lines are in.
    child.on('close', (code, signal) => {
      exit = { code, signal }
      changed()
      resolve()
    })
  })

  const describe = (): string => `stdout:\n${out}\nstderr:\n${err}`

  /** Waits until `check` returns a value, the process exits, or `ms` pass. */
  const waitFor = <T>(what: string, ms: number, check: () => T | undefined): Promise<T> => new Promise((resolve, reject) => {
    const settle = (): void => {
      const value = check()
      if (value !== undefined) done(() => resolve(value))
      else if (exit !== null) done(() => reject(new Error(`server exited (${JSON.stringify(exit)}) before ${what}\n${describe()}`)))
    }
    const timer = setTimeout(() => done(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}\n${describe()}`))), ms)
    const done = (fn: () => void): void => {
      clearTimeout(timer)
      listeners.delete(settle)
      fn()
    }
    listeners.add(settle)
    settle()
  })

  const exited = async (ms = 15_000): Promise<Exit> => await waitFor('the exit', ms, () => exit ?? undefined)

  t.teardown(async () => {
    if (exit === null) {
      child.kill('SIGKILL')
      await exitedPromise
    }
  })

  return {
    child,
    logs,
    stdout: () => out,
    stderr: () => err,
    listening: async (ms = 60_000) => await waitFor('"listening on"', ms, () => {
      const line = logs.find((l) => l.msg.startsWith('listening on'))
      return typeof line?.port === 'number' ? line.port : undefined
    }),
    exited,
    async stop (signal, ms) {
      if (exit === null) child.kill(signal)
      return await exited(ms)
    }
  }
}
