import { sql, type Kysely } from 'kysely'
import type { Database, UserRow } from '../schema.js'

export type UserIdentity = Pick<UserRow, 'id' | 'username'>

/** Inserts a user; returns null when the name is taken (case-insensitively). */
export async function createUser (db: Kysely<Database>, username: string, passwordHash: string): Promise<UserIdentity | null> {
  const row = await db.insertInto('users')
    .values({ username, password_hash: passwordHash })
    .onConflict((oc) => oc.expression(sql`lower(username)`).doNothing())
    .returning(['id', 'username'])
    .executeTakeFirst()
  return row ?? null
}

export async function findUserByUsername (db: Kysely<Database>, username: string): Promise<UserRow | null> {
  const row = await db.selectFrom('users').selectAll()
    .where(sql<string>`lower(username)`, '=', username.toLowerCase())
    .executeTakeFirst()
  return row ?? null
}

export async function findUserById (db: Kysely<Database>, id: string): Promise<UserRow | null> {
  const row = await db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
  return row ?? null
}

export async function updatePasswordHash (db: Kysely<Database>, id: string, passwordHash: string): Promise<void> {
  await db.updateTable('users').set({ password_hash: passwordHash }).where('id', '=', id).execute()
}

/** Sets last_seen_at to the commit's time for these users, in one statement. */
export async function markSeen (db: Kysely<Database>, userIds: readonly string[]): Promise<void> {
  await db.updateTable('users').set({ last_seen_at: sql<Date>`now()` }).where('id', 'in', [...new Set(userIds)]).execute()
}

/** A user's id and name by primary key: what authenticating a token needs, and no more. */
export async function findUserIdentity (db: Kysely<Database>, id: string): Promise<UserIdentity | null> {
  const row = await db.selectFrom('users').select(['id', 'username']).where('id', '=', id).executeTakeFirst()
  return row ?? null
}

/** Which of `ids` are users now, in one statement (a burst of socket upgrades checks its users at once). */
export async function existingUserIds (db: Kysely<Database>, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set()
  const rows = await db.selectFrom('users').select('id').where('id', 'in', [...new Set(ids)]).execute()
  return new Set(rows.map((row) => row.id))
}
