// REST with autocannon: a trivial route (the cost of the stack), a 50-message history page and
// login, each on the real server (uWS front, Fastify behind it through the bridge) and on the same
// Fastify app on its own Node listener: what serving both faces on one port costs.
import autocannon from 'autocannon'
import { BENCH_USER, LOGIN_USERS } from '../fixture.js'
import { round, startUsage } from '../load/measure.js'
import type { ServerName } from '../report/results.js'
import { createRunDatabase, dropRunDatabase, spawnBenchProcess, type BenchProcess, type RunDatabase } from '../server-process.js'
import type { StandaloneScenario } from './scenario.js'

interface Route {
  readonly name: string
  readonly connections: number
  readonly request: (port: number, token: string) => autocannon.Options
}

const ROUTES: readonly Route[] = [
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
            // Real logins come from different people: rotate over the seeded users.
            body: JSON.stringify({ username: `${BENCH_USER.username}_${next++ % LOGIN_USERS}`, password: BENCH_USER.password })
          })
        }]
      }
    }
  }
]

const FRONTS: ReadonlyArray<{ readonly mode: 'uws' | 'fastify', readonly server: ServerName }> = [
  { mode: 'uws', server: 'chat' },
  { mode: 'fastify', server: 'chat-fastify-listener' }
]

async function login (port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(BENCH_USER)
  })
  if (response.status !== 200) throw new Error(`login failed: ${response.status}`)
  return ((await response.json()) as { token: string }).token
}

export const rest: StandaloneScenario = {
  name: 'rest',
  async run (context) {
    const { seconds } = context.profile.rest
    // Both fronts read the same seeded data: one fresh database when on Postgres.
    const database: RunDatabase | null = context.adminUrl === '' ? null : await createRunDatabase(context.adminUrl)
    try {
      for (const { mode, server } of FRONTS) {
        context.progress(`rest: starting ${server}…`)
        const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: database?.url ?? '' }
        delete env.DATA_DIR
        const child: BenchProcess = await spawnBenchProcess('rest-server', [mode], env)
        try {
          const port = child.ready.port as number
          const token = await login(port)
          for (const route of ROUTES) {
            context.progress(`rest: ${server}: ${route.name} for ${seconds} s…`)
            const usage = await startUsage(child)
            const result = await autocannon({ ...route.request(port, token), connections: route.connections, duration: seconds })
            const used = await usage.end()
            const requests = result.requests.total
            context.record({
              scenario: 'rest',
              server,
              step: `${route.name}, ${route.connections} connections`,
              offered: route.connections,
              request: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
              requestsPerSecond: round(requests / used.seconds),
              cpuUsPerRequest: requests === 0 ? undefined : round(1e6 * used.serverCpuSeconds / requests),
              serverCpuPercent: used.serverCpuPercent,
              serverRssMb: used.serverRssMb,
              generatorCpuPercent: used.generatorCpuPercent,
              generatorBound: used.generatorBound,
              failures: result.non2xx + result.errors + result.timeouts,
              notes: used.notes
            })
          }
        } finally {
          await child.stop()
        }
      }
    } finally {
      if (database !== null) await dropRunDatabase(database)
    }
  }
}
