import type { Kysely } from 'kysely'
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
