import { sql, type Kysely } from 'kysely'
import type { Database, RoomRow } from '../schema.js'

export interface NewRoom { readonly id: string, readonly title: string, readonly private: boolean, readonly createdBy: string }

/** Creates the room with its creator as first member; returns null when the id exists. */
export async function createRoom (db: Kysely<Database>, room: NewRoom): Promise<RoomRow | null> {
  return await db.transaction().execute(async (trx) => {
    const row = await trx.insertInto('rooms')
      .values({ id: room.id, title: room.title, private: room.private, created_by: room.createdBy })
      .onConflict((oc) => oc.column('id').doNothing())
      .returningAll()
      .executeTakeFirst()
    if (row === undefined) return null
    await trx.insertInto('room_members').values({ room_id: room.id, user_id: room.createdBy }).execute()
    return row
  })
}

export async function findRoom (db: Kysely<Database>, id: string): Promise<RoomRow | null> {
  return (await db.selectFrom('rooms').selectAll().where('id', '=', id).executeTakeFirst()) ?? null
}

/** Public rooms and the private rooms `userId` belongs to, by id in byte order whatever the database's collation. */
export async function listVisibleRooms (db: Kysely<Database>, userId: string): Promise<RoomRow[]> {
  return await db.selectFrom('rooms').selectAll()
    .where((eb) => eb.or([
      eb('private', '=', false),
      eb.exists(eb.selectFrom('room_members').select('user_id')
        .whereRef('room_members.room_id', '=', 'rooms.id')
        .where('room_members.user_id', '=', userId))
    ]))
    .orderBy(sql`id collate "C"`)
    .execute()
}

/** The room with whether `userId` belongs to it, in one round trip. */
export async function findRoomForUser (db: Kysely<Database>, roomId: string, userId: string): Promise<{ room: RoomRow, member: boolean } | null> {
  const row = await db.selectFrom('rooms').selectAll('rooms')
    .select((eb) => eb.exists(eb.selectFrom('room_members').select('user_id')
      .whereRef('room_members.room_id', '=', 'rooms.id')
      .where('room_members.user_id', '=', userId)).as('member'))
    .where('rooms.id', '=', roomId)
    .executeTakeFirst()
  if (row === undefined) return null
  const { member, ...room } = row
  return { room, member: Boolean(member) }
}

/** Idempotent: adding a member twice leaves one membership. */
export async function addMember (db: Kysely<Database>, roomId: string, userId: string): Promise<void> {
  await db.insertInto('room_members').values({ room_id: roomId, user_id: userId })
    .onConflict((oc) => oc.columns(['room_id', 'user_id']).doNothing())
    .execute()
}

/** Idempotent: removing a non-member changes nothing. */
export async function removeMember (db: Kysely<Database>, roomId: string, userId: string): Promise<void> {
  await db.deleteFrom('room_members').where('room_id', '=', roomId).where('user_id', '=', userId).execute()
}

/** Each existing room's last committed seq, in one query. */
export async function roomLastSeqs (db: Kysely<Database>, roomIds: readonly string[]): Promise<Map<string, number>> {
  if (roomIds.length === 0) return new Map()
  const rows = await db.selectFrom('rooms').select(['id', 'last_seq']).where('id', 'in', roomIds).execute()
  return new Map(rows.map((row) => [row.id, Number(row.last_seq)]))
}
