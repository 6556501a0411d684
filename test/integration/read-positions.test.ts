import { sql, type Kysely } from 'kysely'
import t from 'tap'
import { insertMessages, type MessageDraft } from '../../db/repositories/messages.repository.js'
import { listReceipts, storeReadPositions, type ReadUpdate } from '../../db/repositories/reads.repository.js'
import type { Database } from '../../db/schema.js'
import { eachMigratedDatabase, insertRoom, insertUser, newWriteId, seededRandom } from '../helpers/repository-db.js'
import { range } from '../helpers/chat.js'

// The read positions' statements against a real database, no server: the group commit moving its
// authors' positions, the batched read update (clamped, never backwards, duplicates collapsed,
// each move reported once), the receipts listing, and both writers at once on several pools
// without deadlocks.

/** Every stored position of the room, as `user id → read_seq`. */
async function positions (db: Kysely<Database>, roomId: string): Promise<Record<string, number>> {
  const rows = await db.selectFrom('read_positions').select(['user_id', 'read_seq']).where('room_id', '=', roomId).execute()
  return Object.fromEntries(rows.map((r) => [r.user_id, Number(r.read_seq)]))
}

function drafts (roomId: string, userId: string, count: number, tag: string): MessageDraft[] {
  return range(1, count).map((i) => ({ roomId, userId, body: `${tag} ${i}`, clientMsgId: `${tag}-${i}` }))
}

eachMigratedDatabase(t, 'chat-reads-', async (t, { backend, db, open, close }) => {
  const alice = await insertUser(db, 'alice')
  const bob = await insertUser(db, 'bob')
  const carol = await insertUser(db, 'carol')

  t.test('a batch moves each author\'s position to their highest new seq; repeats and refusals move nothing', async (t) => {
    await insertRoom(db, 'authors')
    await insertRoom(db, 'authors-2')
    await insertRoom(db, 'closed', true, [alice])
    await insertMessages(db, [
      ...drafts('authors', alice, 2, 'a'),
      ...drafts('authors', bob, 1, 'b'),
      ...drafts('authors', alice, 1, 'a2'),
      ...drafts('authors-2', bob, 2, 'b'),
      { roomId: 'closed', userId: bob, body: 'not a member', clientMsgId: null },
      { roomId: 'no-such-room', userId: bob, body: 'lost', clientMsgId: null }
    ], newWriteId())
    t.strictSame(await positions(db, 'authors'), { [alice]: 4, [bob]: 3 }, 'authors: alice wrote 1, 2 and 4, bob 3')
    t.strictSame(await positions(db, 'authors-2'), { [bob]: 2 }, 'authors-2: bob wrote 1 and 2')
    t.strictSame(await positions(db, 'closed'), {}, 'a refused message moves nothing')

    // Others write on; bob's position stays where his own message left it.
    await insertMessages(db, drafts('authors', carol, 3, 'c'), newWriteId())
    t.strictSame(await positions(db, 'authors'), { [alice]: 4, [bob]: 3, [carol]: 7 }, 'carol wrote 5..7; the others did not move')
    // A resent message (same key) is a duplicate: it moves nothing.
    await insertMessages(db, drafts('authors', bob, 1, 'b'), newWriteId())
    t.strictSame(await positions(db, 'authors'), { [alice]: 4, [bob]: 3, [carol]: 7 }, 'a duplicate moves nothing')
    // A reader ahead of the author's new message keeps the higher of the two.
    t.match(await storeReadPositions(db, [{ roomId: 'authors', userId: bob, seq: 7 }]), [{ readSeq: 7, moved: true }])
    await insertMessages(db, drafts('authors', bob, 1, 'b-new'), newWriteId())
    t.equal((await positions(db, 'authors'))[bob], 8, 'bob read to 7, then wrote 8')
  })

  t.test('a read batch: clamped to last_seq, never backwards, duplicates collapsed, each move reported once', async (t) => {
    await insertRoom(db, 'reads')
    await insertRoom(db, 'empty')
    await insertMessages(db, drafts('reads', carol, 10, 'c'), newWriteId())
    const updates: ReadUpdate[] = [
      { roomId: 'reads', userId: alice, seq: 3 },
      { roomId: 'reads', userId: bob, seq: 50 },
      { roomId: 'reads', userId: alice, seq: 6 },
      { roomId: 'no-such-room', userId: alice, seq: 1 },
      { roomId: 'reads', userId: alice, seq: 6 },
      { roomId: 'reads', userId: alice, seq: 2 },
      { roomId: 'empty', userId: alice, seq: 5 },
      { roomId: 'reads', userId: carol, seq: 4 }
    ]
    t.strictSame(await storeReadPositions(db, updates), [
      { readSeq: 6, moved: false },
      { readSeq: 10, moved: true },
      { readSeq: 6, moved: true },
      null,
      { readSeq: 6, moved: false },
      { readSeq: 6, moved: false },
      { readSeq: 0, moved: false },
      { readSeq: 10, moved: false }
    ], 'per update: the position after the batch; the move on the first update with the highest seq; null for an unknown room')
    t.strictSame(await positions(db, 'reads'), { [alice]: 6, [bob]: 10, [carol]: 10 }, 'stored')
    t.strictSame(await positions(db, 'empty'), {}, 'a room without messages stores no position')

    t.strictSame(await storeReadPositions(db, [{ roomId: 'reads', userId: alice, seq: 5 }, { roomId: 'reads', userId: bob, seq: 10 }]), [
      { readSeq: 6, moved: false },
      { readSeq: 10, moved: false }
    ], 'lower or equal: nothing moves')
    t.strictSame(await storeReadPositions(db, [{ roomId: 'reads', userId: alice, seq: 9 }]), [{ readSeq: 9, moved: true }], 'higher: it moves')
    t.strictSame(await positions(db, 'reads'), { [alice]: 9, [bob]: 10, [carol]: 10 }, 'stored')
  })

  t.test('receipts: readers above 0, highest first, then by user id as a number, limited', async (t) => {
    await insertRoom(db, 'listing')
    await insertMessages(db, drafts('listing', alice, 5, 'l'), newWriteId())
    // Enough users that a text sort of ids would differ from a numeric one (9 < 10).
    const users = [alice]
    for (const i of range(1, 9)) users.push(await insertUser(db, `reader${i}`))
    const seqs = [5, 3, 3, 0, 4, 3, 1, 0, 2, 3]
    await storeReadPositions(db, users.map((userId, i) => ({ roomId: 'listing', userId, seq: seqs[i] as number })))
    const expected = users.map((userId, i) => ({ userId, readSeq: seqs[i] as number }))
      .filter((r) => r.readSeq > 0)
      .sort((a, b) => b.readSeq - a.readSeq || Number(a.userId) - Number(b.userId))
    const listed = await listReceipts(db, 'listing', 100)
    t.strictSame(listed.map((r) => ({ userId: r.userId, readSeq: r.readSeq })), expected, 'order')
    t.equal(listed[0]?.username, 'alice', 'with usernames')
    t.strictSame((await listReceipts(db, 'listing', 3)).map((r) => r.userId), expected.slice(0, 3).map((r) => r.userId), 'limit')
    t.strictSame(await listReceipts(db, 'no-such-room', 10), [], 'unknown room: none')
  })

  t.test('message writers and read writers at once, on several pools: no deadlock, positions are the max of both', async (t) => {
    const ROOMS = ['m-a', 'm-b', 'm-c']
    for (const room of ROOMS) {
      await insertRoom(db, room)
      await insertMessages(db, drafts(room, carol, 40, 'seed'), newWriteId())
    }
    // Users without positions yet: a read then inserts one (and checks its foreign keys) while
    // the same user's message may be moving it, the case where lock order matters most.
    const users: string[] = []
    for (const i of range(1, 30)) users.push(await insertUser(db, `busy${i}`))
    const extra = backend === 'postgres' ? [await open(), await open()] : []
    const pools = extra.length === 0 ? [db, db, db] : [db, ...extra.map((h) => h.db)]
    const before = backend === 'postgres' ? await deadlocks(db) : 0
    const authored = new Map<string, number>()
    const read = new Map<string, number>()
    const raise = (map: Map<string, number>, key: string, seq: number): void => { map.set(key, Math.max(map.get(key) ?? 0, seq)) }
    const errors: unknown[] = []
    const pick = <T>(items: readonly T[], next: () => number): T => items[Math.floor(next() * items.length)] as T
    // Every pool walks the users in the same order from its own offset, its writer and reader side by side.
    const writer = async (pool: Kysely<Database>, p: number): Promise<void> => {
      const next = seededRandom(p + 1)
      for (const k of range(0, users.length - 1)) {
        const userId = users[(k + 10 * p) % users.length] as string
        const batch: MessageDraft[] = range(1, 1 + Math.floor(next() * 3)).map((i) => ({ roomId: pick(ROOMS, next), userId, body: `p${p} k${k} #${i}`, clientMsgId: null }))
        const outcomes = await insertMessages(pool, batch, newWriteId())
        outcomes.forEach((o, i) => { if (o.status === 'created') raise(authored, `${batch[i]?.roomId ?? ''}/${userId}`, o.seq) })
      }
    }
    const reader = async (pool: Kysely<Database>, p: number): Promise<void> => {
      const next = seededRandom(100 + p)
      for (const k of range(0, users.length - 1)) {
        const userId = users[(k + 10 * p) % users.length] as string
        // Seqs up to the seeded 40, so no clamp applies and the expected maximum is known.
        const batch: ReadUpdate[] = range(1, 1 + Math.floor(next() * 3)).map(() => ({ roomId: pick(ROOMS, next), userId, seq: 1 + Math.floor(next() * 40) }))
        const results = await storeReadPositions(pool, batch)
        batch.forEach((u, i) => {
          raise(read, `${u.roomId}/${userId}`, u.seq)
          if ((results[i]?.readSeq ?? 0) < u.seq) errors.push(`a read to ${u.seq} answered ${JSON.stringify(results[i])}`)
        })
      }
    }
    await Promise.all(pools.flatMap((pool, p) => [writer(pool, p), reader(pool, p)].map(async (run) => await run.catch((error: unknown) => { errors.push(error) }))))
    t.strictSame(errors, [], 'no call failed; every answer is at least the seq asked for')
    for (const room of ROOMS) {
      const expected: Record<string, number> = { [carol]: 40 }
      for (const userId of users) {
        const seq = Math.max(authored.get(`${room}/${userId}`) ?? 0, read.get(`${room}/${userId}`) ?? 0)
        if (seq > 0) expected[userId] = seq
      }
      t.strictSame(await positions(db, room), expected, `${room}: each position is the highest of what the user wrote and read`)
    }
    if (backend === 'postgres') {
      for (const handle of extra) await close(handle)
      t.equal(await deadlocks(db), before, 'no deadlock was detected (rooms, then positions, each in one order)')
    }
  })
})

/** Deadlocks detected in this database so far (Postgres statistics, flushed by each backend at most once a second). */
async function deadlocks (db: Kysely<Database>): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const { rows } = await sql<{ deadlocks: string }>`select deadlocks from pg_stat_database where datname = current_database()`.execute(db)
  return Number(rows[0]?.deadlocks ?? 0)
}
