// REST throughput with autocannon: login, history and a trivial route, served through the uWS front
// (the product) and by the same Fastify app on its own listener (what one port costs).
// `npm run bench:rest [-- --duration 10]`; with DATABASE_URL set, both servers use (and seed) that database.
import autocannon from 'autocannon'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { BENCH_USER, LOGIN_USERS } from './fixture.js'
import { sampleProcess } from './process-stats.js'

const here = dirname(fileURLToPath(import.meta.url))
const durationArg = process.argv.indexOf('--duration')
const DURATION = durationArg > 0 ? Number(process.argv[durationArg + 1]) : 5

interface Scenario {
  readonly name: string
  readonly connections: number
  readonly request: (port: number, token: string) => autocannon.Options
}

const scenarios: Scenario[] = [
  { name: 'GET /health', connections: 50, request: (port) => ({ url: `http://127.0.0.1:${port}/health` }) },
  {
    name: 'GET /rooms/general/messages?limit=50',
    connections: 50,
    request: (port, token) => ({ url: `http://127.0.0.1:${port}/rooms/general/messages?limit=50`, headers: { authorization: `Bearer ${token}` } })
  },
  {
    name: 'POST /auth/login (scrypt N=2^17)',
    connections: 8,
    request: (port) => {
      let next = 0
      return {
        url: `http://127.0.0.1:${port}/auth/login`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        requests: [{
          setupRequest: (request) => ({
            ...request,
            body: JSON.stringify({ username: `${BENCH_USER.username}_${next++ % LOGIN_USERS}`, password: BENCH_USER.password })
          })
        }]
      }
    }
  }
]

interface Row {
  mode: string
  scenario: string
  requestsPerSecond: number
  latencyP50Ms: number
  latencyP99Ms: number
  non2xx: number
  errors: number
  serverCpuMsPerRequest: number
}

async function startServerProcess (mode: 'uws' | 'fastify'): Promise<{ child: ChildProcess, port: number }> {
  const extension = fileURLToPath(import.meta.url).endsWith('.ts') ? '.ts' : '.js'
  const args = extension === '.ts' ? ['--import', 'tsx', join(here, `rest-server.ts`), mode] : [join(here, 'rest-server.js'), mode]
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env } })
  const lines = createInterface({ input: child.stdout! })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${mode} server did not start`)), 60_000)
    lines.once('line', (line) => { clearTimeout(timer); resolve((JSON.parse(line) as { port: number }).port) })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${mode} server exited with ${code}`)) })
  })
  return { child, port }
}

async function login (port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(BENCH_USER)
  })
  if (response.status !== 200) throw new Error(`login failed: ${response.status}`)
  return ((await response.json()) as { token: string }).token
}

async function measure (mode: 'uws' | 'fastify'): Promise<Row[]> {
  const { child, port } = await startServerProcess(mode)
  const rows: Row[] = []
  try {
    const token = await login(port)
    for (const scenario of scenarios) {
      process.stderr.write(`  ${mode}: ${scenario.name} for ${DURATION}s…\n`)
      const before = sampleProcess(child.pid!)
      const result = await autocannon({ ...scenario.request(port, token), connections: scenario.connections, duration: DURATION })
      const after = sampleProcess(child.pid!)
      const requests = result.requests.total
      rows.push({
        mode,
        scenario: scenario.name,
        requestsPerSecond: Math.round(requests / DURATION),
        latencyP50Ms: result.latency.p50,
        latencyP99Ms: result.latency.p99,
        non2xx: result.non2xx,
        errors: result.errors,
        serverCpuMsPerRequest: requests === 0 ? 0 : Number(((after.cpuSeconds - before.cpuSeconds) * 1000 / requests).toFixed(3))
      })
    }
  } finally {
    child.kill('SIGTERM')
  }
  return rows
}

const rows = [...await measure('uws'), ...await measure('fastify')]
console.table(rows)
for (const scenario of scenarios) {
  const front = rows.find((r) => r.mode === 'uws' && r.scenario === scenario.name)
  const own = rows.find((r) => r.mode === 'fastify' && r.scenario === scenario.name)
  if (front !== undefined && own !== undefined && own.requestsPerSecond > 0) {
    console.log(`${scenario.name}: uWS front serves ${(front.requestsPerSecond / own.requestsPerSecond).toFixed(2)}x the requests/s of Fastify's own listener`)
  }
}
// Results go to the source tree's bench/results, also when run from the build in dist/bench.
const file = join(here.endsWith(join('dist', 'bench')) ? join(here, '..', '..', 'bench') : here, 'results', `rest-${new Date().toISOString().slice(0, 19).replace(/:/g, '-')}.json`)
mkdirSync(dirname(file), { recursive: true })
const database = process.env.DATABASE_URL === undefined || process.env.DATABASE_URL === '' ? 'embedded' : 'postgres'
writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), database, durationSeconds: DURATION, node: process.version, rows }, null, 2)}\n`)
console.log(`written ${file}`)
