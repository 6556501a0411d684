// Child processes the harness starts (servers and peers): started with their output in a log file,
// stopped one by one by pid (also on Ctrl-C or an error), and their CPU read from /proc.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { openSync, closeSync, readFileSync, readdirSync } from 'node:fs'
import { createServer } from 'node:net'

const clockTicks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100

const running = new Set<ChildProcess>()

export interface Started {
  name: string
  pid: number
  logFile: string
  hasExited(): boolean
  stop(): Promise<void>
}

/** user + system CPU seconds of one process (all its threads), or null when it is gone. */
export function processCpuSeconds(pid: number): number | null {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return null
  }
  // Fields after the command name, which is in parentheses and may hold spaces: state is field 3,
  // utime field 14, stime field 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / clockTicks
}

function childrenOf(pid: number): number[] {
  const found: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (parent === pid) found.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return found
}

/** CPU seconds of a process and every live descendant: a server that forks is measured whole. */
export function processTreeCpuSeconds(pid: number): number {
  let total = processCpuSeconds(pid) ?? 0
  for (const child of childrenOf(pid)) total += processTreeCpuSeconds(child)
  return total
}

function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve(true)
    })
  })
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM')
    if (!(await waitForExit(child, 8000))) {
      child.kill('SIGKILL')
      await waitForExit(child, 2000)
    }
  }
  running.delete(child)
}

export function startProcess(
  name: string,
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; logFile: string }
): Started {
  const log = openSync(options.logFile, 'a')
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', log, log] })
  closeSync(log)
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`)
  running.add(child)
  child.once('exit', () => running.delete(child))
  return {
    name,
    pid: child.pid,
    logFile: options.logFile,
    hasExited: () => child.exitCode !== null || child.signalCode !== null,
    stop: () => stopChild(child)
  }
}

/** Stops every process still running, one by one by its pid. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map(stopChild))
}

export function logTail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}

/** Polls `url` until it answers 200; fails early if the process died, with its log's tail. */
export async function waitForHttp(url: string, started: Started, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      const res = await fetch(url)
      await res.arrayBuffer()
      if (res.status === 200) return
    } catch {
      // not listening yet
    }
    if (started.hasExited()) throw new Error(`${started.name} exited while starting:\n${logTail(started.logFile)}`)
    if (Date.now() > deadline) throw new Error(`${started.name} not ready at ${url} after ${timeoutMs} ms:\n${logTail(started.logFile)}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}
