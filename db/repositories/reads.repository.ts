import { sql, type Kysely } from 'kysely'
import { CONFLICT_SQLSTATES, retryOn } from '../errors.js'
import type { Database } from '../schema.js'

/** A user asks to have read a room up to `seq`. */
export interface ReadUpdate {
  readonly roomId: string
  readonly userId: string
  readonly seq: number
}

/**
 * What became of one update: the user's position in the room afterwards, and whether this update
 * moved it (in a batch, only the first update holding its (room, user)'s highest seq is `moved`).
 */
export interface ReadResult { readonly readSeq: number, readonly moved: boolean }

interface ReadRow {
  ord: string
  read_seq: string
  moved: boolean
}


/**
 * Stores a batch of read positions in one statement: each position becomes
 * `max(current, min(seq, the room's last_seq))`. Updates of the same (room, user) collapse to the
 * highest. Results are in update order; null for a room that does not exist.
 */
export async function storeReadPositions (db: Kysely<Database>, updates: readonly ReadUpdate[]): Promise<Array<ReadResult | null>> {
  const firstIndex = new Map<string, number>()
  const unique: ReadUpdate[] = []
  const slot = updates.map((update) => {
    const key = `${update.roomId}\u0000${update.userId}`
    const seen = firstIndex.get(key)
    if (seen === undefined) {
      firstIndex.set(key, unique.length)
      unique.push(update)
      return unique.length - 1
    }
    if ((unique[seen] as ReadUpdate).seq < update.seq) unique[seen] = update
    return seen
  })
  // Deadlocks cannot happen between our writers (rooms, then positions, each in one order); retried all the same.
  const rows = await retryOn(CONFLICT_SQLSTATES, async () => (await readStatement(unique).execute(db)).rows)
  const stored = new Map(rows.map((row) => [Number(row.ord) - 1, { readSeq: Number(row.read_seq), moved: row.moved }]))
  return updates.map((update, i) => {
    const index = slot[i] as number
    const result = stored.get(index)
    if (result === undefined) return null
    // The move is reported once, on the update that made it.
    return unique[index] === update ? result : { readSeq: result.readSeq, moved: false }
  })
}

// Hand-written SQL on purpose: a batch is one upsert over `unnest`, one round trip.
// `seen` is the position as of the statement's snapshot: an update that does not pass it writes
// nothing (clients repeat reads a lot). One that does is upserted with greatest(), which reads the
// row's latest version, so a concurrent move is never undone. Only a move of the same position
// committed meanwhile (the user's own message, another node's read) can make `seen` stale: the
// answer then lags it, or the move is reported here too, with the position as stored.
function readStatement (updates: readonly ReadUpdate[]) {
  return sql<ReadRow>`
    with input as (
      select * from unnest(
        ${updates.map((u) => u.roomId)}::text[], ${updates.map((u) => u.userId)}::int8[], ${updates.map((u) => u.seq)}::int8[]
      ) with ordinality as t(room_id, user_id, seq, ord)
    ),
    locked as (
      -- Rooms first, in id order, as the group commit locks them (it waits for this batch, or this
      -- batch for it, never each for the other); the latest last_seq comes with the lock.
      select id, last_seq from rooms where id in (select room_id from input) order by id for share
    ),
    target as (
      select i.ord, i.room_id, i.user_id, least(i.seq, r.last_seq) as seq, coalesce(p.read_seq, 0) as seen
      from input i
      join locked r on r.id = i.room_id
      left join read_positions p on p.room_id = i.room_id and p.user_id = i.user_id
    ),
    moved as (
      -- Then positions, in (room, user) order, as the group commit locks its authors' (the sort
      -- takes every room lock above before the first position).
      insert into read_positions as p (room_id, user_id, read_seq)
      select room_id, user_id, seq from target where seq > seen order by room_id, user_id
      on conflict (room_id, user_id) do update set read_seq = greatest(p.read_seq, excluded.read_seq), updated_at = now()
      returning room_id, user_id, read_seq
    )
    select t.ord, coalesce(m.read_seq, t.seen) as read_seq, m.read_seq is not null as moved
    from target t
    left join moved m on m.room_id = t.room_id and m.user_id = t.user_id
  `
}

/** A user's position in a room, with their name. */
export interface Receipt { readonly userId: string, readonly username: string, readonly readSeq: number }

/** The room's readers (position above 0), highest position first, then by user id. */
export async function listReceipts (db: Kysely<Database>, roomId: string, limit: number): Promise<Receipt[]> {
  const rows = await db.selectFrom('read_positions')
    .innerJoin('users', 'users.id', 'read_positions.user_id')
    .select(['read_positions.user_id', 'users.username', 'read_positions.read_seq'])
    .where('read_positions.room_id', '=', roomId)
    .where('read_positions.read_seq', '>', '0')
    .orderBy('read_positions.read_seq', 'desc')
    .orderBy('read_positions.user_id', 'asc')
    .limit(limit)
    .execute()
  return rows.map((row) => ({ userId: row.user_id, username: row.username, readSeq: Number(row.read_seq) }))
}
