import { Type, type Static } from 'typebox'
import type { MessageRow, RoomRow } from '../../db/schema.js'
import { HTTP_STATUS } from '../errors.js'

/** Shapes of API.md shared by REST responses and socket frames. */

export const USERNAME_PATTERN = '^[A-Za-z0-9_.-]{3,32}$'
export const ROOM_ID_PATTERN = '^[A-Za-z0-9_.:-]{1,64}$'
/** Ids are Postgres bigints, sent as decimal strings. */
export const ID_PATTERN = '^[1-9][0-9]{0,17}$'

export const Id = Type.String({ pattern: ID_PATTERN, description: 'a decimal string', examples: ['42'] })
export const RoomId = Type.String({ pattern: ROOM_ID_PATTERN, description: 'a room id: 1-64 of [A-Za-z0-9_.:-]', examples: ['general'] })

export const User = Type.Object({ id: Id, username: Type.String() })
export type User = Static<typeof User>

export const Room = Type.Object({
  id: RoomId,
  title: Type.String(),
  private: Type.Boolean(),
  createdBy: Type.Union([Id, Type.Null()], { description: 'the creator\'s user id' }),
  createdAt: Type.String({ format: 'date-time' }),
  lastSeq: Type.Integer({ minimum: 0, description: 'the room\'s highest seq' }),
  readSeq: Type.Integer({ minimum: 0, description: 'the caller\'s read position (0 if never read)' }),
  unread: Type.Integer({ minimum: 0, description: '`lastSeq - readSeq`' })
})
export type Room = Static<typeof Room>

export const Message = Type.Object({
  id: Id,
  room: RoomId,
  seq: Type.Integer({ minimum: 1, description: 'per room, from 1, without gaps' }),
  userId: Id,
  username: Type.String(),
  body: Type.String(),
  clientMsgId: Type.Union([Type.String(), Type.Null()], { description: 'the sender\'s idempotency key; null when it gave none' }),
  createdAt: Type.String({ format: 'date-time' })
})
export type Message = Static<typeof Message>

export const ErrorResponse = Type.Object({
  error: Type.String({ description: `one of ${Object.keys(HTTP_STATUS).join(', ')}` }),
  message: Type.String({ description: 'for people, not programs' })
})

/** A room as `readSeq`'s reader sees it. */
export function toRoom (row: RoomRow, readSeq: number): Room {
  const lastSeq = Number(row.last_seq)
  return {
    id: row.id,
    title: row.title,
    private: row.private,
    createdBy: row.created_by,
    createdAt: row.created_at.toISOString(),
    lastSeq,
    readSeq,
    // A position is clamped to last_seq when stored; the clamp here only guards a row read mid-race.
    unread: Math.max(0, lastSeq - readSeq)
  }
}

export function toMessage (row: MessageRow & { username: string }): Message {
  return {
    id: row.id,
    room: row.room_id,
    seq: Number(row.seq),
    userId: row.user_id,
    username: row.username,
    body: row.body,
    clientMsgId: row.client_msg_id_generated ? null : row.client_msg_id,
    createdAt: row.created_at.toISOString()
  }
}
