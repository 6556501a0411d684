import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Test } from 'tap'
import type { OpenDatabase } from '../../plugins/infra/db.js'
import type { ClusterOverride } from '../../plugins/infra/realtime.js'
import { loadConfig, type Config } from '../../src/config.js'
import { startServer, type RunningServer } from '../../src/server.js'
import { backends, type Backend } from './backends.js'
import { createClient, type ApiClient } from './http.js'

export const TEST_SECRET = 'test-secret-that-is-at-least-32-bytes-long!'

export interface TestServer {
  readonly server: RunningServer
  readonly config: Config
  readonly baseUrl: string
  readonly api: ApiClient
}

export interface TestServerOptions {
  readonly env?: Record<string, string>
  readonly openDatabase?: OpenDatabase
  /** scrypt log2(N); tests default to 12 so hashing does not dominate the suite (the production cost has its own test). */
  readonly scryptLogN?: number
  /** The bus and presence store of an in-process cluster (several servers in one test). */
  readonly cluster?: ClusterOverride
  /** Where the server logs (see `captureLogs`); by default it logs nothing. */
  readonly logger?: Logger
}

/** Starts the real server (uWS listener, Fastify, database) on 127.0.0.1 and a free port; stopped at teardown. */
export async function startTestServer (t: Test, backend: Backend, options: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'chat-test-'))
  const { url, drop } = await backend.provision()
  const loaded = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    DATA_DIR: dataDir,
    DATABASE_URL: url ?? '',
    JWT_SECRET: TEST_SECRET,
    LOG_LEVEL: 'silent',
    ...options.env
  })
  const config: Config = { ...loaded, auth: { ...loaded.auth, scryptLogN: options.scryptLogN ?? 12 } }
  let server: RunningServer
  try {
    server = await startServer(config, options.logger ?? false, options.openDatabase, options.cluster)
  } catch (error) {
    // A server that failed to start (a test of that, say) still leaves no database behind.
    await drop()
    rmSync(dataDir, { recursive: true, force: true })
    throw error
  }
  t.teardown(async () => {
    await server.close()
    await drop()
    rmSync(dataDir, { recursive: true, force: true })
  })
  const baseUrl = `http://127.0.0.1:${server.port}`
  return { server, config, baseUrl, api: createClient(baseUrl) }
}

/** Runs `fn` as a subtest per backend, and says which backend was skipped and why. */
export function eachBackend (t: Test, fn: (t: Test, backend: Backend) => Promise<void>): void {
  const { run, skipped } = backends()
  for (const backend of run) {
    t.test(backend.name, async (t) => await fn(t, backend))
  }
  if (skipped !== null) t.test('postgres', { skip: skipped }, async () => {})
}
