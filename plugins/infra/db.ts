import fp from 'fastify-plugin'
import type { Kysely } from 'kysely'
import { createDatabase, type DatabaseHandle, type DatabaseOptions } from '../../db/create-db.js'
import { migrateToLatest } from '../../db/migrate.js'
import type { Database } from '../../db/schema.js'
import { createOutageLog, type OutageLog } from '../../src/outage-log.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Kysely<Database>
    database: DatabaseHandle
    /** Told by every part that finds the database unreachable; logs when that starts and when it ends, once each. */
    databaseOutage: OutageLog
  }
}

export type OpenDatabase = (options: DatabaseOptions) => Promise<DatabaseHandle>

/** While the database is unreachable it is pinged this often, so its return is logged even without traffic. */
const RECHECK_MS = 1000

/** Opens the configured database, brings its schema up to date, and closes it with the app. */
export default fp<{ openDatabase?: OpenDatabase | undefined }>(async (fastify, { openDatabase = createDatabase }) => {
  const database = await openDatabase({
    ...fastify.config.db,
    // A database restart breaks every pooled connection at once: one outage, not a line per connection.
    // No connection exists before openDatabase returns, so `outage` is set by the time this runs.
    onConnectionError: (error) => { outage.failed(error) }
  })
  const outage = createOutageLog({ log: fastify.log, what: 'database', recheck: { run: async () => { await database.ping() }, everyMs: RECHECK_MS } })
  try {
    const applied = await migrateToLatest(database.db)
    if (applied.length > 0) fastify.log.info({ migrations: applied }, 'database migrated')
  } catch (error) {
    outage.close()
    await database.close()
    throw error
  }
  fastify.decorate('database', database)
  fastify.decorate('db', database.db)
  fastify.decorate('databaseOutage', outage)
  fastify.addHook('onClose', async () => {
    // Closing it is no outage.
    outage.close()
    await database.close()
  })
}, { name: 'db', dependencies: ['config'] })
