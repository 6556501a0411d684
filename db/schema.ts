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

/** A user's read position in a room; never moves backwards and never past the room's `last_seq`. */
export interface ReadPositionsTable {
  room_id: string
  user_id: string
  read_seq: Int8
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>
}

/** One login: the family its rotated refresh tokens belong to. Revoked on logout or on reuse of a spent token. */
export interface LoginsTable {
  id: Generated<string>
  user_id: string
  created_at: CreatedAt
  revoked_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
}

export interface RefreshTokensTable {
  /** SHA-256 of the opaque token; the token itself is never stored. */
  token_hash: string
  login_id: string
  created_at: CreatedAt
  expires_at: ColumnType<Date, Date | string, Date | string>
  /** Set when the token is exchanged; a second exchange of the same token is reuse. */
  spent_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
}

/** One row: the random id this database was given when it was created. */
export interface DatabaseIdentityTable {
  id: string
  created_at: CreatedAt
}

export interface Database {
  users: UsersTable
  rooms: RoomsTable
  room_members: RoomMembersTable
  messages: MessagesTable
  read_positions: ReadPositionsTable
  logins: LoginsTable
  refresh_tokens: RefreshTokensTable
  database_identity: DatabaseIdentityTable
}

export type UserRow = Selectable<UsersTable>
export type RoomRow = Selectable<RoomsTable>
export type MessageRow = Selectable<MessagesTable>
