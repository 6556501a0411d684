import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql, type Kysely } from 'kysely'
import t from 'tap'
import { createDatabase } from '../../db/create-db.js'
import { migrateDown, migrateToLatest } from '../../db/migrate.js'
import { migrations } from '../../db/migrations/index.js'
import type { Database } from '../../db/schema.js'
import { backends } from '../helpers/backends.js'

const APP_TABLES = ['database_identity', 'logins', 'messages', 'read_positions', 'refresh_tokens', 'room_members', 'rooms', 'users']
const ALL_MIGRATIONS = Object.keys(migrations).sort()
const NEWEST = ALL_MIGRATIONS[ALL_MIGRATIONS.length - 1] ?? ''
const WRITE_IDS = '2026_11_25_000001_message_write_ids'

async function tables (db: Kysely<Database>): Promise<string[]> {
  const { rows } = await sql<{ table_name: string }>`
    select table_name from information_schema.tables
    where table_schema = current_schema() and table_type = 'BASE TABLE'
    order by table_name`.execute(db)
  return rows.map((r) => r.table_name).filter((name) => !name.startsWith('kysely_'))
}

// No server here: the migrations run against a bare database, as `db:migrate` would.
const { run, skipped } = backends()
for (const backend of run) {
  t.test(backend.name, async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'chat-migrate-'))
    const { url, drop } = await backend.provision()
    const handle = await createDatabase({ url, dataDir, poolSize: 1 })
    t.teardown(async () => {
      await handle.close()
      await drop()
      rmSync(dataDir, { recursive: true, force: true })
    })
    const { db } = handle

    t.test('up, down, up leaves the full schema and the general room', async (t) => {
      t.strictSame(await tables(db), [], 'the database starts empty')
      t.strictSame(await migrateToLatest(db), ALL_MIGRATIONS, 'first up runs every migration')
      t.strictSame(await tables(db), APP_TABLES, 'every table exists')
      // Data written between down and up must be gone: down really drops, not just forgets.
      await db.insertInto('users').values({ username: 'before_down', password_hash: 'x' }).execute()

      t.strictSame(await migrateDown(db), [NEWEST], 'down undoes the newest migration')
      for (const name of [...ALL_MIGRATIONS].reverse().slice(1)) t.strictSame(await migrateDown(db), [name], `then ${name}`)
      t.strictSame(await tables(db), [], 'down of every migration drops every table')

      t.strictSame(await migrateToLatest(db), ALL_MIGRATIONS, 'up again reapplies them all')
      t.strictSame(await migrateToLatest(db), [], 'a further up has nothing to do')
      t.strictSame(await tables(db), APP_TABLES, 'every table exists again')
      t.strictSame(await db.selectFrom('users').select('username').execute(), [], 'the dropped data did not survive')
      const rooms = await db.selectFrom('rooms').selectAll().execute()
      t.equal(rooms.length, 1, 'exactly one room')
      const [general] = rooms
      t.match(general, { id: 'general', title: 'General', private: false, created_by: null }, 'general is public and has no creator')
      t.equal(String(general?.last_seq), '0', 'general starts at seq 0')
      t.ok(general?.created_at instanceof Date, 'created_at is set')
      // Tokens carry this id: each database gets its own, once, at random.
      const identity = await db.selectFrom('database_identity').select('id').execute()
      t.equal(identity.length, 1, 'one database identity')
      t.match(identity[0]?.id, /^[0-9a-f]{32}$/, '128 random bits in hex')
    })

    t.test('generated idempotency keys: flagged, and put back to null by down', async (t) => {
      const user = await db.insertInto('users').values({ username: 'keys', password_hash: 'x' }).returning('id').executeTakeFirstOrThrow()
      await db.insertInto('rooms').values({ id: 'keys', title: 'Keys', private: false }).execute()
      await db.insertInto('messages').values([
        { room_id: 'keys', seq: 1, user_id: user.id, body: 'a', client_msg_id: 'mine' },
        { room_id: 'keys', seq: 2, user_id: user.id, body: 'b', client_msg_id: '~1.0', client_msg_id_generated: true, write_id: '1' }
      ]).execute()
      const flags = await db.selectFrom('messages').select(['client_msg_id_generated', 'write_id']).where('room_id', '=', 'keys').orderBy('seq').execute()
      t.strictSame(flags, [{ client_msg_id_generated: false, write_id: null }, { client_msg_id_generated: true, write_id: '1' }])
      // Down to just before the migration that added the keys, newest first.
      const fromWriteIds = ALL_MIGRATIONS.slice(ALL_MIGRATIONS.indexOf(WRITE_IDS))
      for (const name of [...fromWriteIds].reverse()) t.strictSame(await migrateDown(db), [name], `down ${name}`)
      const { rows } = await sql<{ client_msg_id: string | null }>`select client_msg_id from messages where room_id = 'keys' order by seq`.execute(db)
      t.strictSame(rows, [{ client_msg_id: 'mine' }, { client_msg_id: null }], 'the client\'s key stays, the generated one is null again')
      t.strictSame(await migrateToLatest(db), fromWriteIds)
      await db.deleteFrom('messages').where('room_id', '=', 'keys').execute()
      await db.deleteFrom('rooms').where('id', '=', 'keys').execute()
    })

    t.test('unique constraints', async (t) => {
      const [carol, dave] = await db.insertInto('users')
        .values([{ username: 'Carol', password_hash: 'x' }, { username: 'dave', password_hash: 'x' }])
        .returning('id').execute()
      if (carol === undefined || dave === undefined) throw new Error('users not inserted')
      await db.insertInto('rooms').values({ id: 'second', title: 'Second', private: false }).execute()

      await t.rejects(db.insertInto('users').values({ username: 'carol', password_hash: 'x' }).execute(),
        { code: '23505', constraint: 'users_username_lower_key' }, 'usernames are unique ignoring case')
      await t.rejects(db.insertInto('users').values({ username: 'CAROL', password_hash: 'x' }).execute(),
        { code: '23505' }, 'also in upper case')

      const message = (room: string, seq: number, user: string, clientMsgId: string | null): Promise<unknown> =>
        db.insertInto('messages').values({ room_id: room, seq, user_id: user, body: 'hi', client_msg_id: clientMsgId }).execute()

      await message('general', 1, carol.id, 'c-1')
      await t.rejects(message('general', 1, dave.id, null), { code: '23505', constraint: 'messages_room_seq_key' }, 'one seq per room')
      await t.resolves(message('second', 1, carol.id, 'c-1'), 'the same seq and clientMsgId in another room')

      await t.rejects(message('general', 2, carol.id, 'c-1'), { code: '23505', constraint: 'messages_room_user_client_msg_key' },
        'one clientMsgId per user and room')
      await t.resolves(message('general', 3, dave.id, 'c-1'), 'the same clientMsgId from another user')
      await t.resolves(message('general', 4, carol.id, null), 'a message without clientMsgId')
      await t.resolves(message('general', 5, carol.id, null), 'and another one: NULLs never collide')

      const stored = await db.selectFrom('messages').select(['room_id', 'seq', 'user_id', 'client_msg_id'])
        .orderBy('room_id').orderBy('seq').execute()
      t.strictSame(stored.map((m) => [m.room_id, Number(m.seq), m.user_id, m.client_msg_id]), [
        ['general', 1, carol.id, 'c-1'],
        ['general', 3, dave.id, 'c-1'],
        ['general', 4, carol.id, null],
        ['general', 5, carol.id, null],
        ['second', 1, carol.id, 'c-1']
      ], 'exactly the accepted rows were stored')

      await db.insertInto('room_members').values({ room_id: 'general', user_id: carol.id }).execute()
      await t.rejects(db.insertInto('room_members').values({ room_id: 'general', user_id: carol.id }).execute(),
        { code: '23505' }, 'one membership per user and room')
      await t.rejects(db.insertInto('rooms').values({ id: 'general', title: 'Again', private: false }).execute(),
        { code: '23505' }, 'room ids are unique')
    })
  })
}
if (skipped !== null) t.test('postgres', { skip: skipped }, async () => {})
