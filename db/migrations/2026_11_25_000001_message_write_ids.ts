import type { Kysely } from 'kysely'

// Frozen: a migration that has shipped is never edited; add a new one instead.

/**
 * A write that loses its connection mid-statement may or may not have committed. To find out by
 * running it again, every message needs a key (messages sent without a clientMsgId get a
 * generated one, flagged so the API still shows null) and records the write that stored it.
 */
export async function up (db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('messages')
    .addColumn('client_msg_id_generated', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('write_id', 'bigint')
    .execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  // Generated keys were never the client's: put back the nulls they stand for.
  await db.updateTable('messages').set({ client_msg_id: null }).where('client_msg_id_generated', '=', true).execute()
  await db.schema.alterTable('messages').dropColumn('write_id').dropColumn('client_msg_id_generated').execute()
}
