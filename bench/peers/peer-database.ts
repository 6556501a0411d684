// The database a hand-written peer talks to through a `pg` pool: the run's Postgres database when
// DATABASE_URL is set, otherwise an embedded one like ours (PGlite in a worker thread of this
// process, served on a Unix socket; it has one session, so the pool has one connection).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { startEmbeddedPostgres } from '../../db/embedded.js'

export interface PeerDatabase {
  readonly pool: pg.Pool
  close (): Promise<void>
}

/** An idle connection that fails is dropped by the pool (the next query opens another): said on stderr, not a crash. */
function reported (pool: pg.Pool): pg.Pool {
  pool.on('error', (error) => { process.stderr.write(`${process.argv[1] ?? 'peer'}: idle connection failed: ${String(error)}\n`) })
  return pool
}

/**
 * `max` connections on Postgres. Embedded: in `dataDir` when given (a database our server left
 * there, kept), else in a temporary directory removed on close.
 */
export async function openPeerDatabase (options: { readonly max: number, readonly dataDir?: string | undefined }): Promise<PeerDatabase> {
  const url = process.env.DATABASE_URL ?? ''
  if (url !== '') {
    const pool = reported(new pg.Pool({ connectionString: url, max: options.max }))
    return { pool, close: async () => { await pool.end() } }
  }
  const temporary = options.dataDir === undefined ? mkdtempSync(join(tmpdir(), 'chat-bench-peer-')) : null
  const embedded = await startEmbeddedPostgres(options.dataDir ?? temporary!)
  const pool = reported(new pg.Pool({ host: embedded.socketDir, port: embedded.port, user: 'postgres', database: 'postgres', max: 1 }))
  return {
    pool,
    async close () {
      await pool.end()
      await embedded.stop()
      if (temporary !== null) rmSync(temporary, { recursive: true, force: true })
    }
  }
}
