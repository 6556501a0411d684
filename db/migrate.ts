import { inspect } from 'node:util'
import { Migrator, type Kysely, type MigrationResultSet } from 'kysely'
import { migrations } from './migrations/index.js'

function migrator (db: Kysely<any>): Migrator {
  return new Migrator({ db, provider: { getMigrations: async () => migrations } })
}

function unwrap ({ error, results }: MigrationResultSet): string[] {
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName
    throw new Error(`migration ${failed ?? ''} failed: ${error instanceof Error ? error.message : inspect(error)}`, { cause: error })
  }
  return (results ?? []).map((r) => r.migrationName)
}

/** Brings the schema up to date; returns the names of the migrations it ran. */
export async function migrateToLatest (db: Kysely<any>): Promise<string[]> {
  return unwrap(await migrator(db).migrateToLatest())
}

/** Undoes the newest migration; returns its name (empty when there was none). */
export async function migrateDown (db: Kysely<any>): Promise<string[]> {
  return unwrap(await migrator(db).migrateDown())
}
