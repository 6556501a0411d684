import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { readEnvFile } from '../src/config.js'

/**
 * `npm run cluster -- --nodes 3`: N local nodes on consecutive ports (from PORT, default 3000)
 * against one Postgres (DATABASE_URL) and one Redis (REDIS_URL, default the local one), to try
 * the multi-node behaviour by hand. Ctrl-C stops them all gracefully.
 */
const SERVER = fileURLToPath(new URL('../src/server.js', import.meta.url))

const { values } = parseArgs({ options: { nodes: { type: 'string', default: '3' } } })
const nodes = Number(values.nodes)
const env: Record<string, string | undefined> = { ...readEnvFile(), ...process.env }
const problems: string[] = []
if (!Number.isInteger(nodes) || nodes < 1 || nodes > 16) problems.push('--nodes must be a whole number from 1 to 16')
if ((env.DATABASE_URL ?? '') === '') problems.push('DATABASE_URL must be set: the nodes share one Postgres (the embedded database belongs to one process)')
const firstPort = Number(env.PORT ?? 3000)
if (!Number.isInteger(firstPort) || firstPort < 1 || firstPort + nodes - 1 > 65535) problems.push('PORT must leave room for every node\'s port')
if (problems.length > 0) {
  for (const problem of problems) process.stderr.write(`cluster: ${problem}\n`)
  process.exit(1)
}
const redisUrl = env.REDIS_URL === undefined || env.REDIS_URL === '' ? 'redis://127.0.0.1:6379' : env.REDIS_URL

/** Starts one node and prefixes its output with its name. */
function startNode (index: number): ChildProcess {
  const port = firstPort + index
  const child = spawn(process.execPath, [SERVER], {
    env: { ...env, PORT: String(port), REDIS_URL: redisUrl, DATA_DIR: `${env.DATA_DIR ?? './data'}/node-${index + 1}` },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const name = `node ${index + 1} :${port} | `
  for (const stream of [child.stdout, child.stderr]) {
    let pending = ''
    stream?.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n')
      pending = lines.pop() ?? ''
      for (const line of lines) process.stdout.write(`${name}${line}\n`)
    })
  }
  children.push(child)
  child.on('exit', (code, signal) => { exitedNode(index, code, signal) })
  return child
}

// The first node migrates the database; the others start once it listens, so migrations never race.
const children: ChildProcess[] = []
let stopping = false

/** A node that dies alone (say, killed to watch the others take over) leaves the rest running. */
const exitedNode = (index: number, code: number | null, signal: NodeJS.Signals | null): void => {
  if (!stopping) process.stderr.write(`cluster: node ${index + 1} exited (${signal ?? code ?? ''})\n`)
  if (children.every((child) => child.exitCode !== null || child.signalCode !== null)) process.exit(stopping ? 0 : 1)
}

const first = startNode(0)
first.stdout?.on('data', function listening (chunk: string) {
  if (!chunk.includes('listening on')) return
  first.stdout?.off('data', listening)
  if (stopping) return
  for (let i = 1; i < nodes; i++) startNode(i)
  process.stdout.write(`cluster: ${nodes} nodes on ports ${firstPort}-${firstPort + nodes - 1}, Redis ${redisUrl.replace(/\/\/[^@]*@/, '//***@')}; Ctrl-C stops them\n`)
})

const stop = (): void => {
  if (stopping) return
  stopping = true
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
