import fp from 'fastify-plugin'
import type { Kysely } from 'kysely'
import { createDatabase, type DatabaseHandle, type DatabaseOptions } from '../../db/create-db.js'
import { migrateToLatest } from '../../db/migrate.js'
import type { Database } from '../../db/schema.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Kysely<Database>
    database: DatabaseHandle
  }
}

export type OpenDatabase = (options: DatabaseOptions) => Promise<DatabaseHandle>

/** Opens the configured database, brings its schema up to date, and closes it with the app. */
export default fp<{ openDatabase?: OpenDatabase | undefined }>(async (fastify, { openDatabase = createDatabase }) => {
  const database = await openDatabase({
    ...fastify.config.db,
    onConnectionError: (error) => fastify.log.warn({ err: error }, 'database connection lost')
  })
  try {
    const applied = await migrateToLatest(database.db)
    if (applied.length > 0) fastify.log.info({ migrations: applied }, 'database migrated')
  } catch (error) {
    await database.close()
    throw error
  }
  fastify.decorate('database', database)
  fastify.decorate('db', database.db)
  fastify.addHook('onClose', async () => await database.close())
}, { name: 'db', dependencies: ['config'] })
