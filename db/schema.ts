import type { ColumnType, Generated, Selectable } from 'kysely'

/** `int8` columns arrive from `pg` as strings; ids stay strings, counters are converted where read. */
type Int8 = ColumnType<string, string | number | bigint, string | number | bigint>
type CreatedAt = ColumnType<Date, Date | string | undefined, never>

export interface UsersTable {
  id: Generated<string>
  username: string
  password_hash: string
  created_at: CreatedAt
  last_seen_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
}

export interface RoomsTable {
  id: string
  title: string
  private: boolean
  created_by: string | null
  created_at: CreatedAt
  /** The highest seq handed out in this room; advanced inside the transaction that inserts messages. */
  last_seq: ColumnType<string, string | number | bigint | undefined, string | number | bigint>
}

export interface RoomMembersTable {
  room_id: string
  user_id: string
  joined_at: CreatedAt
}

export interface MessagesTable {
  id: Generated<string>
  room_id: string
  seq: Int8
  user_id: string
  body: string
  /** The client's idempotency key, or a generated one when `client_msg_id_generated` (the API shows null). */
  client_msg_id: string | null
  client_msg_id_generated: ColumnType<boolean, boolean | undefined, boolean>
  /** The batch write that stored the row; lets a write retried after a lost connection recognise its own rows. */
  write_id: Int8 | null
  created_at: CreatedAt
}

export interface Database {
  users: UsersTable
  rooms: RoomsTable
  room_members: RoomMembersTable
  messages: MessagesTable
}

export type UserRow = Selectable<UsersTable>
export type RoomRow = Selectable<RoomsTable>
export type MessageRow = Selectable<MessagesTable>
