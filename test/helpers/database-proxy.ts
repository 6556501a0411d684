import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { startEmbeddedPostgres } from '../../db/embedded.js'
import type { Backend } from './backends.js'
import { proxyUrl, startUnixSocketProxy, type TcpProxy } from './tcp-proxy.js'

export interface ProxiedDatabase {
  /** Cut it to take the database away from the server, restore it to give it back. */
  readonly proxy: TcpProxy
  /** For `startTestServer`: the database through the proxy. */
  readonly backend: Backend
  /** Server settings the database needs (the embedded one serves one connection at a time). */
  readonly env: Record<string, string>
}

/**
 * The backend's database behind a proxy the test can cut. The machine's Postgres is proxied on
 * its port; the embedded database, which normally lives inside the server, is started by the
 * test instead and proxied on its Unix socket, so it can go away too. Both end at `t`'s teardown.
 */
export async function proxiedDatabase (t: Test, backend: Backend): Promise<ProxiedDatabase> {
  if (backend.name === 'postgres') {
    const { url, drop } = await backend.provision()
    t.teardown(drop)
    const { proxy, url: proxied } = await proxyUrl(url!, 5432)
    t.teardown(async () => await proxy.close())
    return { proxy, backend: fixed(proxied), env: {} }
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'chat-proxied-db-'))
  const embedded = await startEmbeddedPostgres(dataDir)
  t.teardown(async () => {
    await embedded.stop()
    rmSync(dataDir, { recursive: true, force: true })
  })
  const proxy = await startUnixSocketProxy(join(embedded.socketDir, `.s.PGSQL.${embedded.port}`))
  // Registered last, so it runs first: the proxy goes before the database behind it stops.
  t.teardown(async () => await proxy.close())
  return { proxy, backend: fixed(`postgres://postgres@127.0.0.1:${proxy.port}/postgres`), env: { DB_POOL_SIZE: '1' } }
}

function fixed (url: string): Backend {
  return { name: 'postgres', provision: async () => ({ url, drop: async () => {} }) }
}
