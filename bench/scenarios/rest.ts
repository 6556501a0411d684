// REST with autocannon: a trivial route (the cost of the stack), a 50-message history page and
// login, each on the real server (uWS front, Fastify behind it through the bridge) and on the same
// Fastify app on its own Node listener: what serving both faces on one port costs. The history page
// also on a hand-written node:http + pg handler (peers/http-pg-history.ts) reading the same data.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { BENCH_USER, LOGIN_USERS } from '../fixture.js'
import { round, startUsage } from '../load/measure.js'
import type { ServerName } from '../report/results.js'
import { createRunDatabase, databaseBackends, dropRunDatabase, spawnBenchProcess, type BenchProcess, type RunDatabase } from '../server-process.js'
import type { StandaloneScenario } from './scenario.js'

interface Route {
  readonly name: string
  readonly connections: number
  readonly request: (port: number, token: string) => autocannon.Options
}

const HISTORY: Route = {
  name: 'GET /rooms/general/messages?limit=50',
  connections: 50,
  request: (port, token) => ({ url: `http://127.0.0.1:${port}/rooms/general/messages?limit=50`, headers: { authorization: `Bearer ${token}` } })
}

const ROUTES: readonly Route[] = [
  { name: 'GET /health', connections: 50, request: (port) => ({ url: `http://127.0.0.1:${port}/health` }) },
  HISTORY,
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

/** Ours, through the uWS front and on Fastify's own listener, every route; then the hand-written peer, history only. */
const SERVERS: ReadonlyArray<{ readonly server: ServerName, readonly script: string, readonly args: string[], readonly routes: readonly Route[] }> = [
  { server: 'chat', script: 'rest-server', args: ['uws'], routes: ROUTES },
  { server: 'chat-fastify-listener', script: 'rest-server', args: ['fastify'], routes: ROUTES },
  { server: 'http-pg-history', script: 'peers/http-pg-history', args: [], routes: ROUTES.filter((route) => route === HISTORY) }
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
    // Every server reads the same seeded data: one fresh database on Postgres, one DATA_DIR embedded
    // (the first server seeds it, the others find it seeded).
    const database: RunDatabase | null = context.adminUrl === '' ? null : await createRunDatabase(context.adminUrl)
    const dataDir = database === null ? mkdtempSync(join(tmpdir(), 'chat-bench-rest-')) : null
    /** From our server's login: the peer checks the same token. */
    let token: string | undefined
    try {
      for (const { server, script, args, routes } of SERVERS) {
        context.progress(`rest: starting ${server}…`)
        const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: database?.url ?? '', DATA_DIR: dataDir ?? '' }
        if (dataDir === null) delete env.DATA_DIR
        const child: BenchProcess = await spawnBenchProcess(script, args, env)
        try {
          const port = child.ready.port as number
          token ??= await login(port)
          const measured = { pid: child.pid, postgresBackends: async () => database === null ? new Map<number, number>() : await databaseBackends(database) }
          for (const route of routes) {
            context.progress(`rest: ${server}: ${route.name} for ${seconds} s…`)
            const usage = await startUsage(measured)
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
              ...(database === null || requests === 0 ? {} : { databaseCpuUsPerRequest: round(1e6 * used.databaseCpuSeconds / requests) }),
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
      if (dataDir !== null) rmSync(dataDir, { recursive: true, force: true })
    }
  }
}
