import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Kysely } from 'kysely'
import type { Test } from 'tap'
import { createDatabase, type DatabaseHandle } from '../../db/create-db.js'
import { migrateToLatest } from '../../db/migrate.js'
import type { Database } from '../../db/schema.js'
import { backends, type Backend } from './backends.js'

/** What repository tests (statements against a real database, no server) share. */

/** A fresh write id, as the batch writer makes them: a random positive 63-bit integer in decimal. */
export function newWriteId (): string {
  return (randomBytes(8).readBigUInt64BE() >> 1n).toString()
}

/** A small seeded PRNG (mulberry32), so a failing interleaving's inputs can be reproduced. */
export function seededRandom (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

export async function insertUser (db: Kysely<Database>, username: string): Promise<string> {
  const row = await db.insertInto('users').values({ username, password_hash: 'not-a-real-hash' }).returning('id').executeTakeFirstOrThrow()
  return row.id
}

export async function insertRoom (db: Kysely<Database>, id: string, isPrivate = false, members: string[] = []): Promise<void> {
  await db.insertInto('rooms').values({ id, title: id, private: isPrivate }).execute()
  if (members.length > 0) await db.insertInto('room_members').values(members.map((userId) => ({ room_id: id, user_id: userId }))).execute()
}

export interface MigratedDatabase {
  readonly backend: Backend['name']
  readonly db: Kysely<Database>
  /** Another pool on the same database (a second writer), closed at teardown unless `close`d first. */
  readonly open: () => Promise<DatabaseHandle>
  /** Closes a pool from `open` now (a Postgres backend flushes its statistics when it exits). */
  readonly close: (handle: DatabaseHandle) => Promise<void>
}

/**
 * Runs `fn` as a subtest per backend on a fresh, migrated database, and says which backend was
 * skipped and why.
 */
export function eachMigratedDatabase (t: Test, prefix: string, fn: (t: Test, database: MigratedDatabase) => Promise<void>): void {
  const { run, skipped } = backends()
  for (const backend of run) {
    t.test(backend.name, async (t) => {
      const dataDir = mkdtempSync(join(tmpdir(), prefix))
      const { url, drop } = await backend.provision()
      const handles: DatabaseHandle[] = []
      const open = async (): Promise<DatabaseHandle> => {
        const handle = await createDatabase({ url, dataDir, poolSize: 4 })
        handles.push(handle)
        return handle
      }
      t.teardown(async () => {
        for (const handle of handles.reverse()) await handle.close()
        await drop()
        rmSync(dataDir, { recursive: true, force: true })
      })
      const { db } = await open()
      await migrateToLatest(db)
      const close = async (handle: DatabaseHandle): Promise<void> => {
        handles.splice(handles.indexOf(handle), 1)
        await handle.close()
      }
      await fn(t, { backend: backend.name, db, open, close })
    })
  }
  if (skipped !== null) t.test('postgres', { skip: skipped }, async () => {})
}
