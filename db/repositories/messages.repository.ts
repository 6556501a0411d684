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

// Hand-written SQL on purpose: Kysely cannot express data-modifying CTEs over `unnest`, and one
// statement instead of five (select existing, lock, bump, insert, commit) is the group commit's cost.
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
  return sql<InsertRow>`
    with input as (
      select * from unnest(
        ${drafts.map((d) => d.roomId)}::text[], ${drafts.map((d) => d.userId)}::int8[],
        ${drafts.map((d) => d.body)}::text[], ${drafts.map((d) => d.key)}::text[], ${drafts.map((d) => d.generated)}::bool[]
      ) with ordinality as t(room_id, user_id, body, client_msg_id, generated, ord)
    ),
    locked as (
      -- Every writer locks its rooms in the same order before bumping them: no deadlocks between writers.
      select id, private from rooms where id in (select room_id from input) order by id for update
    ),
    checked as (
      select i.*, r.id is not null as room_exists,
        r.id is not null and (not r.private or exists (
          select 1 from room_members m where m.room_id = i.room_id and m.user_id = i.user_id)) as allowed
      from input i left join locked r on r.id = i.room_id
    ),
    existing as (
      select c.ord, m.id, m.seq, m.created_at, m.write_id from checked c
      join messages m on m.room_id = c.room_id and m.user_id = c.user_id and m.client_msg_id = c.client_msg_id
      where c.allowed
    ),
    fresh as (
      select c.ord, c.room_id, c.user_id, c.body, c.client_msg_id, c.generated,
        row_number() over (partition by c.room_id order by c.ord) as n
      from checked c
      where c.allowed and not exists (select 1 from existing e where e.ord = c.ord)
    ),
    bumped as (
      update rooms set last_seq = rooms.last_seq + f.count
      from (select room_id, count(*) as count from fresh group by room_id) f
      where rooms.id = f.room_id
      returning rooms.id, rooms.last_seq - f.count as base
    ),
    inserted as (
      insert into messages (room_id, seq, user_id, body, client_msg_id, client_msg_id_generated, write_id)
      select f.room_id, b.base + f.n, f.user_id, f.body, f.client_msg_id, f.generated, ${writeId}::int8
      from fresh f join bumped b on b.id = f.room_id
      order by f.ord
      returning id, room_id, seq, user_id, created_at
    ),
    authored as (
      -- What you answered, you have read (API.md). Rooms are locked above, positions here in
      -- (room, user) order: the read writer takes both in the same order, so the two cannot deadlock.
      insert into read_positions as p (room_id, user_id, read_seq)
      select room_id, user_id, max(seq) from inserted group by room_id, user_id order by room_id, user_id
      on conflict (room_id, user_id) do update set read_seq = greatest(p.read_seq, excluded.read_seq), updated_at = now()
    )
    select c.ord, c.room_exists, c.allowed,
      coalesce(ins.id, e.id) as id, coalesce(ins.seq, e.seq) as seq,
      coalesce(ins.created_at, e.created_at) as created_at,
      ins.id is not null or e.write_id is not distinct from ${writeId}::int8 as created
    from checked c
    left join existing e on e.ord = c.ord
    left join fresh f on f.ord = c.ord
    left join bumped b on b.id = f.room_id
    left join inserted ins on ins.room_id = f.room_id and ins.seq = b.base + f.n
    order by c.ord
  `
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
