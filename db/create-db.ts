import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { startEmbeddedPostgres } from './embedded.js'
import type { Database } from './schema.js'

export interface DatabaseOptions {
  /** A postgres:// URL, or null for the embedded database in `dataDir`. */
  readonly url: string | null
  readonly dataDir: string
  readonly poolSize: number
  /** Told when a connection breaks (the server restarting, say); the query on it fails, the next one reconnects. */
  readonly onConnectionError?: (error: Error) => void
}

export interface DatabaseHandle {
  readonly db: Kysely<Database>
  readonly embedded: boolean
  /** Resolves when the database answers a trivial query. */
  ping (): Promise<void>
  /** Ends the pool, then stops the embedded database if there is one. */
  close (): Promise<void>
}

/** Opens the database the configuration names; the app sees `pg` + Kysely either way. */
export async function createDatabase (options: DatabaseOptions): Promise<DatabaseHandle> {
  const embedded = options.url === null ? await startEmbeddedPostgres(options.dataDir) : null
  // A request waits at most this long for a connection, then fails as `unavailable` instead of hanging.
  const connectionTimeoutMillis = 5000
  const pool = new pg.Pool(embedded === null
    ? { connectionString: options.url ?? undefined, max: options.poolSize, connectionTimeoutMillis }
    // PGlite runs one statement at a time, so one connection is all it can use.
    : { host: embedded.socketDir, port: embedded.port, user: 'postgres', database: 'postgres', max: 1, connectionTimeoutMillis })
  // pg emits 'error' on a client whose connection breaks, and a checked-out client has no listener
  // of the pool's: without one of our own, a connection lost between checkout and query would crash
  // the process. The pool re-emits idle clients' errors; this listener has reported them already.
  pool.on('connect', (client) => client.on('error', (error) => options.onConnectionError?.(error)))
  pool.on('error', () => {})
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  return {
    db,
    embedded: embedded !== null,
    async ping () {
      const client = await pool.connect()
      try {
        await client.query('select 1')
      } finally {
        client.release()
      }
    },
    async close () {
      await db.destroy()
      await embedded?.stop()
    }
  }
}
