import { sql, type Kysely } from 'kysely'
import { CONFLICT_SQLSTATES, isDatabaseUnavailable, retryOn, UncertainWriteError } from '../errors.js'
import type { Database, MessageRow } from '../schema.js'

export type MessageWithAuthor = MessageRow & { username: string }

export interface HistoryQuery {
  readonly roomId: string
  /** Only messages with a smaller seq. */
  readonly before?: number | undefined
  /** Only messages with a larger seq. */
  readonly after?: number | undefined
  readonly limit: number
}

/**
 * One page of a room's history in ascending seq. With `after` the page starts right after it
 * (paging forward); otherwise it is the newest `limit` messages below `before` (paging back).
 * `hasMore` says whether the range holds messages beyond the page, in the paging direction.
 */
export async function listMessages (db: Kysely<Database>, query: HistoryQuery): Promise<{ messages: MessageWithAuthor[], hasMore: boolean }> {
  const forward = query.after !== undefined
  let q = db.selectFrom('messages')
    .innerJoin('users', 'users.id', 'messages.user_id')
    .selectAll('messages')
    .select('users.username')
    .where('messages.room_id', '=', query.roomId)
  if (query.after !== undefined) q = q.where('messages.seq', '>', String(query.after))
  if (query.before !== undefined) q = q.where('messages.seq', '<', String(query.before))
  // One extra row tells whether another page exists without a count query.
  const rows = await q.orderBy('messages.seq', forward ? 'asc' : 'desc').limit(query.limit + 1).execute()
  const hasMore = rows.length > query.limit
  const page = rows.slice(0, query.limit)
  return { messages: forward ? page : page.reverse(), hasMore }
}

/** A message as the socket accepted it, before it has a seq. */
export interface MessageDraft {
  readonly roomId: string
  readonly userId: string
  readonly body: string
  readonly clientMsgId: string | null
}

/** What became of one draft; `duplicate` carries the message stored the first time. */
export type InsertOutcome =
  | { readonly status: 'created' | 'duplicate', readonly id: string, readonly seq: number, readonly createdAt: Date }
  | { readonly status: 'not_found' }
  | { readonly status: 'forbidden' }

interface InsertRow {
  ord: string
  room_exists: boolean
  allowed: boolean
  id: string | null
  seq: string | null
  created_at: Date | null
  created: boolean
}

/**
 * Failures another writer can cause; the whole statement is safe to run again. Deadlocks cannot
 * happen between our writers (rooms are locked in order) and are retried all the same.
 */
const RETRYABLE_SQLSTATES = new Set([
  '23505', // another writer stored the same (room, user, clientMsgId) after our snapshot
  ...CONFLICT_SQLSTATES
])

/**
 * Stores a batch of messages atomically, in one statement (one round trip, one commit):
 * - a draft whose `(room, user, clientMsgId)` is already stored is answered with the stored message;
 * - unknown rooms are `not_found`; private rooms the sender is not a member of are `forbidden`;
 * - each room's `last_seq` is advanced by its number of new messages under the row lock (taken in
 *   room id order), so seq is gapless and unique with any number of writers on the database; new
 *   rows go in through `unnest`;
 * - each author's read position in a room moves up to their highest new seq there (never back).
 * Outcomes are in draft order. Repeats of one key within the batch are stored once.
 *
 * `writeId` names this batch. If the connection breaks after the statement was sent, this throws
 * `UncertainWriteError`; calling again with the same drafts and `writeId` is then safe: rows the
 * first attempt committed are found by their keys and reported as `created`, not `duplicate`.
 */
export async function insertMessages (db: Kysely<Database>, drafts: readonly MessageDraft[], writeId: string): Promise<InsertOutcome[]> {
  const firstIndex = new Map<string, number>()
  const unique: KeyedDraft[] = []
  const slot = drafts.map((draft) => {
    const key = draft.clientMsgId === null ? null : `${draft.roomId}\u0000${draft.userId}\u0000${draft.clientMsgId}`
    const seen = key === null ? undefined : firstIndex.get(key)
    if (seen !== undefined) return -1 - seen
    if (key !== null) firstIndex.set(key, unique.length)
    // Derived from the write and the position, so a retry of the same batch generates the same key.
    unique.push({ ...draft, key: draft.clientMsgId ?? `~${writeId}.${unique.length}`, generated: draft.clientMsgId === null })
    return unique.length - 1
  })
  const stored = await retryOn(RETRYABLE_SQLSTATES, async () => await insertUnique(db, unique, writeId))
  return slot.map((index) => {
    if (index >= 0) return stored[index] as InsertOutcome
    const original = stored[-1 - index] as InsertOutcome
    return original.status === 'created' ? { ...original, status: 'duplicate' } : original
  })
}

interface KeyedDraft extends MessageDraft {
  readonly key: string
  readonly generated: boolean
}

// The statement lives in the database as `chat_insert_messages` (see its migration): planned once
// per connection instead of on every batch, which at everyday batch sizes was most of its cost.
async function insertUnique (db: Kysely<Database>, drafts: readonly KeyedDraft[], writeId: string): Promise<InsertOutcome[]> {
  // On a connection of its own, so an error can be told apart: failing to get a connection means
  // nothing was sent; failing after that leaves the outcome unknown.
  const rows = await db.connection().execute(async (connection) => {
    try {
      return (await insertStatement(drafts, writeId).execute(connection)).rows
    } catch (error) {
      throw isDatabaseUnavailable(error) ? new UncertainWriteError(error) : error
    }
  })
  return rows.map((row): InsertOutcome => {
    if (!row.room_exists) return { status: 'not_found' }
    if (!row.allowed) return { status: 'forbidden' }
    if (row.id === null || row.seq === null || row.created_at === null) throw new Error(`message ${row.ord} of the batch was neither stored nor found`)
    return { status: row.created ? 'created' : 'duplicate', id: row.id, seq: Number(row.seq), createdAt: row.created_at }
  })
}

function insertStatement (drafts: readonly KeyedDraft[], writeId: string) {
  return sql<InsertRow>`select * from chat_insert_messages(
    ${drafts.map((d) => d.roomId)}::text[], ${drafts.map((d) => d.userId)}::int8[], ${drafts.map((d) => d.body)}::text[],
    ${drafts.map((d) => d.key)}::text[], ${drafts.map((d) => d.generated)}::bool[], ${writeId}::int8)`
}

/** One stored message with its author's name; null when there is none with this id. */
export async function findMessage (db: Kysely<Database>, id: string): Promise<MessageWithAuthor | null> {
  const row = await db.selectFrom('messages')
    .innerJoin('users', 'users.id', 'messages.user_id')
    .selectAll('messages')
    .select('users.username')
    .where('messages.id', '=', id)
    .executeTakeFirst()
  return row ?? null
}

/** What a history request finds: the page as API.md's JSON text, or why the caller gets none. */
export type HistoryPageJson =
  | { readonly status: 'ok', readonly json: string }
  | { readonly status: 'user_gone' | 'not_found' | 'forbidden' }

/** Larger than any seq: the bound of a page without `before`. */
const INT8_MAX = '9223372036854775807'

/**
 * `listMessages` for a reader, as the REST response's JSON `{messages, hasMore}` built by Postgres,
 * with the reader's checks in the same call: that `userId` still exists, that the room does, and
 * that a private room has them as a member. One round trip instead of three, and one text column
 * instead of 51 rows parsed, copied into Dates and serialised again; the statement is
 * `chat_history_page` (db/migrations), planned once per connection. The fields are `toMessage`'s,
 * in its order and formats: ids as strings, `createdAt` as `Date.toISOString` prints the
 * millisecond `pg` reads (truncated, in UTC).
 */
export async function historyPageJson (db: Kysely<Database>, query: HistoryQuery & { readonly userId: string }): Promise<HistoryPageJson> {
  const { rows } = await sql<{ user_exists: boolean, readable: boolean, room_exists: boolean, page: string | null }>`
    select * from chat_history_page(${query.userId}, ${query.roomId}, ${query.after ?? 0}, ${query.before ?? INT8_MAX}, ${query.limit}, ${query.after !== undefined})
  `.execute(db)
  const [row] = rows
  if (row === undefined) throw new Error('chat_history_page returned no row')
  if (!row.user_exists) return { status: 'user_gone' }
  if (!row.room_exists) return { status: 'not_found' }
  if (!row.readable || row.page === null) return { status: 'forbidden' }
  return { status: 'ok', json: row.page }
}
