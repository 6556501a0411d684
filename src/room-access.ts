import type { Kysely } from 'kysely'
import { findRoomForUser } from '../db/repositories/rooms.repository.js'
import type { Database, RoomRow } from '../db/schema.js'
import { AppError } from './errors.js'

/** `readSeq`: the user's read position in the room (0 if never read). */
export interface RoomAccess { readonly room: RoomRow, readonly member: boolean, readonly readSeq: number }

/**
 * The room and whether `userId` is a member; unknown rooms are `not_found`. What a non-member may
 * do is the caller's decision (API.md answers 403 for membership changes, also in private rooms).
 */
export async function roomForMembership (db: Kysely<Database>, roomId: string, userId: string): Promise<RoomAccess> {
  const access = await findRoomForUser(db, roomId, userId)
  if (access === null) throw new AppError('not_found', `room ${roomId} not found`)
  return access
}

/**
 * The room as `userId` may see it. Unknown rooms and private rooms the user is not in are the
 * same `not_found`, so room ids cannot be probed.
 */
export async function visibleRoom (db: Kysely<Database>, roomId: string, userId: string): Promise<RoomAccess> {
  const access = await roomForMembership(db, roomId, userId)
  if (access.room.private && !access.member) throw new AppError('not_found', `room ${roomId} not found`)
  return access
}

/**
 * The room for reading its contents (history, presence): unknown is `not_found`, private without
 * membership is `forbidden`, as API.md states for history.
 */
export async function readableRoom (db: Kysely<Database>, roomId: string, userId: string): Promise<RoomAccess> {
  const access = await roomForMembership(db, roomId, userId)
  if (access.room.private && !access.member) throw new AppError('forbidden', 'this room is private and you are not a member')
  return access
}
