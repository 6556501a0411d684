import { randomBytes } from 'node:crypto'
import { sql, type Kysely } from 'kysely'

// Frozen: a migration that has shipped is never edited; add a new one instead.

/**
 * API.md v1.1:
 * - `read_positions`: a user's read position per room (public rooms need no membership to be read).
 * - `logins` and `refresh_tokens`: one login is a family of refresh tokens, rotated on every use;
 *   a spent token used again revokes its whole family (RFC 9700 §4.14.2). Tokens are stored only
 *   as hashes.
 * - `database_identity`: a random id minted once per database. Access tokens carry it, so a token
 *   signed with the same secret for another database (the embedded one, say) is refused here.
 */
export async function up (db: Kysely<any>): Promise<void> {
  await db.schema.createTable('read_positions')
    .addColumn('room_id', 'text', (c) => c.notNull().references('rooms.id').onDelete('cascade'))
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('read_seq', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('read_positions_pkey', ['room_id', 'user_id'])
    // Every group commit moves its authors' positions: with read_seq in no index and room left on
    // each page, those updates are HOT (no index writes). Receipts sort one room's rows instead.
    .modifyEnd(sql`with (fillfactor = 70)`)
    .execute()
  // Deleting a user cascades here; without this index that is a scan.
  await db.schema.createIndex('read_positions_user_idx').on('read_positions').column('user_id').execute()

  await db.schema.createTable('logins')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('revoked_at', 'timestamptz')
    .execute()
  await db.schema.createIndex('logins_user_idx').on('logins').column('user_id').execute()

  await db.schema.createTable('refresh_tokens')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('login_id', 'bigint', (c) => c.notNull().references('logins.id').onDelete('cascade'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('spent_at', 'timestamptz')
    .execute()
  await db.schema.createIndex('refresh_tokens_login_idx').on('refresh_tokens').column('login_id').execute()
  await db.schema.createIndex('refresh_tokens_expires_idx').on('refresh_tokens').column('expires_at').execute()

  await db.schema.createTable('database_identity')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.insertInto('database_identity').values({ id: randomBytes(16).toString('hex') }).execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('database_identity').execute()
  await db.schema.dropTable('refresh_tokens').execute()
  await db.schema.dropTable('logins').execute()
  await db.schema.dropTable('read_positions').execute()
}
