// Several server processes on one Postgres database and one Redis: "any number of nodes behind
// any load balancer behave as one server" (API.md, Guarantees). Each node is the real entry point
// (`spawnServer`), so a test can SIGKILL or SIGTERM one and watch the others.
import type { Test } from 'tap'
import { backends } from './backends.js'
import { registerAndLogIn, spawnedServerEnv, tempDataDir, type Account } from './chat.js'
import { createClient, type ApiClient } from './http.js'
import { redisServerMissing, startRedisServer, type RedisServer } from './redis-server.js'
import { spawnServer, type Exit, type LogLine, type ServerProcess } from './spawn.js'

/** The JWT_SECRET every node shares (a token must be good on any node). */
export const CLUSTER_SECRET = 'cluster-test-secret-that-is-at-least-32-bytes-long'

/** HEARTBEAT_TIMEOUT of the nodes, seconds: uWS's smallest, so a lost node is noticed quickly. */
export const CLUSTER_HEARTBEAT_SECONDS = 8

/** Why the cluster tests cannot run here (for tap's `skip`), or false when they can. */
export function clusterSkip (): string | false {
  const url = process.env.TEST_DATABASE_URL
  if (url === undefined || url === '') return 'cluster: TEST_DATABASE_URL is not set (nodes share one Postgres)'
  const missing = redisServerMissing()
  if (missing !== null) return `cluster: ${missing}`
  return false
}

export interface ClusterNode {
  /** 1-based, as failure messages name it ("node 2"). */
  readonly index: number
  readonly name: string
  readonly baseUrl: string
  readonly api: ApiClient
  readonly process: ServerProcess
  /** The node's pino lines so far. */
  readonly logs: readonly LogLine[]
  /** True until the process has exited. */
  alive (): boolean
  /** SIGKILL (unless another signal is given), and the exit. */
  kill (signal?: NodeJS.Signals): Promise<Exit>
  /** SIGTERM (unless another signal is given), and the exit: the graceful stop. */
  stop (signal?: NodeJS.Signals): Promise<Exit>
}

export interface Cluster {
  readonly nodes: readonly ClusterNode[]
  readonly redis: RedisServer
  /** The one database every node uses. */
  readonly databaseUrl: string
  readonly secret: string
  /** Registers and logs in users (one per name, the same name as username), spread over the live nodes. */
  users (names: readonly string[]): Promise<Account[]>
}

export interface ClusterOptions {
  readonly nodes: number
  /** Extra server env for every node (after the defaults, so it can override them). */
  readonly env?: Record<string, string>
}

/** Polls `GET path` on `node` until it answers `status`; false after `ms`. */
export async function httpStatusWithin (node: ClusterNode, path: string, status: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  for (;;) {
    const got = await node.api.request('GET', path).then((r) => r.status, () => 0)
    if (got === status) return true
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** Polls `GET /users/:id/presence` on `node` (as `asker`) until its status is `want`; the last status seen (after `ms` at most). */
export async function userStatusWithin (node: ClusterNode, user: { id: string }, asker: { token: string }, want: string, ms: number): Promise<unknown> {
  const deadline = Date.now() + ms
  for (;;) {
    const status: unknown = await node.api.request('GET', `/users/${user.id}/presence`, { token: asker.token }).then((r) => r.body?.status, () => undefined)
    if (status === want || Date.now() > deadline) return status
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

/**
 * Provisions one fresh Postgres database (dropped with `force` at teardown), starts a Redis of its
 * own, and spawns `nodes` servers on both. Node 1 starts first and migrates the database; the
 * others start together once it listens (concurrent migrations on a fresh database could race).
 * Resolves when every node listens and answers `/ready` with 200. Teardown (tap runs it last in,
 * first out) kills the nodes, then Redis, then drops the database.
 */
export async function startCluster (t: Test, options: ClusterOptions): Promise<Cluster> {
  const postgres = backends().run.find((b) => b.name === 'postgres')
  if (postgres === undefined) throw new Error('startCluster needs TEST_DATABASE_URL (check clusterSkip() first)')
  const { url, drop } = await postgres.provision()
  if (url === null) throw new Error('the postgres backend gave no URL')
  t.teardown(drop)
  const redis = await startRedisServer(t)

  const spawnNode = (index: number): { index: number, server: ServerProcess } => {
    const env = {
      ...spawnedServerEnv(tempDataDir(t, `chat-node${index}-`), CLUSTER_SECRET, url),
      REDIS_URL: redis.url,
      HEARTBEAT_TIMEOUT: String(CLUSTER_HEARTBEAT_SECONDS),
      ...options.env
    }
    return { index, server: spawnServer(t, { env }) }
  }
  const toNode = async ({ index, server }: { index: number, server: ServerProcess }): Promise<ClusterNode> => {
    const baseUrl = `http://127.0.0.1:${await server.listening()}`
    return {
      index,
      name: `node ${index}`,
      baseUrl,
      api: createClient(baseUrl),
      process: server,
      logs: server.logs,
      alive: () => server.child.exitCode === null && server.child.signalCode === null,
      kill: async (signal = 'SIGKILL') => await server.stop(signal, 15_000),
      stop: async (signal = 'SIGTERM') => await server.stop(signal, 30_000)
    }
  }

  const first = await toNode(spawnNode(1))
  const rest = await Promise.all(Array.from({ length: options.nodes - 1 }, async (_, i) => await toNode(spawnNode(i + 2))))
  const nodes = [first, ...rest]
  const notReady = []
  for (const node of nodes) {
    if (!await httpStatusWithin(node, '/ready', 200, 10_000)) notReady.push(node.name)
  }
  if (notReady.length > 0) throw new Error(`not ready after start: ${notReady.join(', ')}`)

  return {
    nodes,
    redis,
    databaseUrl: url,
    secret: CLUSTER_SECRET,
    async users (names) {
      const live = nodes.filter((n) => n.alive())
      // Registering and logging in hash a password at the production cost: spread the users over the nodes.
      return await Promise.all(names.map(async (name, i) => await registerAndLogIn(live[i % live.length]!.api, name)))
    }
  }
}
