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

/** A room with the position of the user it was read for (0 when they never read it). */
export type RoomWithReadSeq = RoomRow & { read_seq: number }

/** Public rooms and the private rooms `userId` belongs to, by id in byte order whatever the database's collation. */
export async function listVisibleRooms (db: Kysely<Database>, userId: string): Promise<RoomWithReadSeq[]> {
  const rows = await db.selectFrom('rooms')
    .leftJoin('read_positions', (join) => join.onRef('read_positions.room_id', '=', 'rooms.id').on('read_positions.user_id', '=', userId))
    .selectAll('rooms')
    .select('read_positions.read_seq')
    .where((eb) => eb.or([
      eb('private', '=', false),
      eb.exists(eb.selectFrom('room_members').select('user_id')
        .whereRef('room_members.room_id', '=', 'rooms.id')
        .where('room_members.user_id', '=', userId))
    ]))
    .orderBy(sql`rooms.id collate "C"`)
    .execute()
  return rows.map(({ read_seq: readSeq, ...room }) => ({ ...room, read_seq: Number(readSeq ?? 0) }))
}

/** The room with whether `userId` belongs to it and their read position, in one round trip. */
export async function findRoomForUser (db: Kysely<Database>, roomId: string, userId: string): Promise<{ room: RoomRow, member: boolean, readSeq: number } | null> {
  const row = await db.selectFrom('rooms')
    .leftJoin('read_positions', (join) => join.onRef('read_positions.room_id', '=', 'rooms.id').on('read_positions.user_id', '=', userId))
    .selectAll('rooms')
    .select('read_positions.read_seq')
    .select((eb) => eb.exists(eb.selectFrom('room_members').select('user_id')
      .whereRef('room_members.room_id', '=', 'rooms.id')
      .where('room_members.user_id', '=', userId)).as('member'))
    .where('rooms.id', '=', roomId)
    .executeTakeFirst()
  if (row === undefined) return null
  const { member, read_seq: readSeq, ...room } = row
  return { room, member: Boolean(member), readSeq: Number(readSeq ?? 0) }
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

export interface RoomMember { readonly user_id: string, readonly username: string, readonly joined_at: Date }

/** One page of a room's members by user id (a bigint, so in numeric order), after `after`; `hasMore` says whether more follow. */
export async function listMembers (db: Kysely<Database>, query: { roomId: string, after?: string | undefined, limit: number }): Promise<{ members: RoomMember[], hasMore: boolean }> {
  let q = db.selectFrom('room_members')
    .innerJoin('users', 'users.id', 'room_members.user_id')
    .select(['room_members.user_id', 'users.username', 'room_members.joined_at'])
    .where('room_members.room_id', '=', query.roomId)
  if (query.after !== undefined) q = q.where('room_members.user_id', '>', query.after)
  // One extra row tells whether another page exists without a count query.
  const rows = await q.orderBy('room_members.user_id').limit(query.limit + 1).execute()
  return { members: rows.slice(0, query.limit), hasMore: rows.length > query.limit }
}
