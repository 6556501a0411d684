import type { Kysely } from 'kysely'
import { findRoom, isMember } from '../db/repositories/rooms.repository.js'
import type { Database, RoomRow } from '../db/schema.js'
import { AppError } from './errors.js'

export interface RoomAccess { readonly room: RoomRow, readonly member: boolean }

/**
 * The room as `userId` may see it. Unknown rooms and private rooms the user is not in are the
 * same `not_found`, so room ids cannot be probed.
 */
export async function visibleRoom (db: Kysely<Database>, roomId: string, userId: string): Promise<RoomAccess> {
  const room = await findRoom(db, roomId)
  if (room === null) throw new AppError('not_found', `room ${roomId} not found`)
  const member = await isMember(db, roomId, userId)
  if (room.private && !member) throw new AppError('not_found', `room ${roomId} not found`)
  return { room, member }
}

/**
 * The room for reading its contents (history, presence): unknown is `not_found`, private without
 * membership is `forbidden`, as API.md states for history.
 */
export async function readableRoom (db: Kysely<Database>, roomId: string, userId: string): Promise<RoomAccess> {
  const room = await findRoom(db, roomId)
  if (room === null) throw new AppError('not_found', `room ${roomId} not found`)
  const member = await isMember(db, roomId, userId)
  if (room.private && !member) throw new AppError('forbidden', 'this room is private and you are not a member')
  return { room, member }
}
