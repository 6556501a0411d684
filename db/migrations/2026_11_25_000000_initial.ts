import { sql, type Kysely } from 'kysely'

// Frozen: a migration that has shipped is never edited; add a new one instead.

export async function up (db: Kysely<any>): Promise<void> {
  await db.schema.createTable('users')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('password_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_seen_at', 'timestamptz')
    .execute()
  // Usernames are unique regardless of case so `Bob` and `bob` cannot be two people.
  await db.schema.createIndex('users_username_lower_key').unique().on('users').expression(sql`lower(username)`).execute()

  await db.schema.createTable('rooms')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('private', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('created_by', 'bigint', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_seq', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute()

  await db.schema.createTable('room_members')
    .addColumn('room_id', 'text', (c) => c.notNull().references('rooms.id').onDelete('cascade'))
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('joined_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('room_members_pkey', ['room_id', 'user_id'])
    .execute()
  await db.schema.createIndex('room_members_user_idx').on('room_members').column('user_id').execute()

  await db.schema.createTable('messages')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('room_id', 'text', (c) => c.notNull().references('rooms.id').onDelete('cascade'))
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id'))
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('client_msg_id', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    // Keyset history pages walk this index in either direction.
    .addUniqueConstraint('messages_room_seq_key', ['room_id', 'seq'])
    // Idempotency: a resent client message finds the original instead of a second row.
    .addUniqueConstraint('messages_room_user_client_msg_key', ['room_id', 'user_id', 'client_msg_id'])
    .execute()

  await db.insertInto('rooms').values({ id: 'general', title: 'General', private: false }).execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('messages').execute()
  await db.schema.dropTable('room_members').execute()
  await db.schema.dropTable('rooms').execute()
  await db.schema.dropTable('users').execute()
}
