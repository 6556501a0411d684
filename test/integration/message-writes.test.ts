import { inspect } from 'node:util'
import { sql, type Kysely } from 'kysely'
import t from 'tap'
import { insertMessages, type InsertOutcome, type MessageDraft } from '../../db/repositories/messages.repository.js'
import type { Database } from '../../db/schema.js'
import { eachMigratedDatabase, insertRoom, insertUser, newWriteId, seededRandom } from '../helpers/repository-db.js'
import { range, sameSeqs } from '../helpers/chat.js'

// `insertMessages` against a real database, no server: the outcomes it promises, and per-room
// seqs that stay gapless and unique with several writers (pools) on one database at once.

function shuffled<T> (items: readonly T[], next: () => number): T[] {
  const copy = [...items]
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    const a = copy[i] as T
    copy[i] = copy[j] as T
    copy[j] = a
  }
  return copy
}

/** A stored message with the client's key as the API shows it (null where the server generated one). */
interface StoredRow { id: string, room_id: string, seq: number, user_id: string, body: string, client_msg_id: string | null, write_id: string | null, created_at: Date }

async function storedRows (db: Kysely<Database>, roomId: string): Promise<StoredRow[]> {
  const rows = await db.selectFrom('messages').selectAll().where('room_id', '=', roomId).orderBy('seq').execute()
  return rows.map((r) => ({
    id: r.id,
    room_id: r.room_id,
    seq: Number(r.seq),
    user_id: r.user_id,
    body: r.body,
    client_msg_id: r.client_msg_id_generated ? null : r.client_msg_id,
    write_id: r.write_id,
    created_at: r.created_at
  }))
}

async function lastSeq (db: Kysely<Database>, roomId: string): Promise<number> {
  const row = await db.selectFrom('rooms').select('last_seq').where('id', '=', roomId).executeTakeFirstOrThrow()
  return Number(row.last_seq)
}

type Stored = Extract<InsertOutcome, { id: string }>

function isStored (outcome: InsertOutcome | undefined): outcome is Stored {
  return outcome !== undefined && (outcome.status === 'created' || outcome.status === 'duplicate')
}

eachMigratedDatabase(t, 'chat-writes-', async (t, { backend, db, open, close }) => {
  const alice = await insertUser(db, 'alice')
  const bob = await insertUser(db, 'bob')
  const carol = await insertUser(db, 'carol')

  t.test('outcomes: not_found, forbidden, created, and repeats of a key', async (t) => {
    await insertRoom(db, 'plain')
    await insertRoom(db, 'plain-2')
    await insertRoom(db, 'secret', true, [alice])
    const drafts: MessageDraft[] = [
      { roomId: 'no-such-room', userId: alice, body: 'lost', clientMsgId: 'x-1' },
      { roomId: 'secret', userId: bob, body: 'not a member', clientMsgId: 'b-1' },
      { roomId: 'plain', userId: alice, body: 'first', clientMsgId: 'k-1' },
      { roomId: 'secret', userId: alice, body: 'a member', clientMsgId: 'a-1' },
      { roomId: 'plain', userId: alice, body: 'first, again', clientMsgId: 'k-1' },
      { roomId: 'plain', userId: bob, body: 'same key, other user', clientMsgId: 'k-1' },
      { roomId: 'plain-2', userId: alice, body: 'same key, other room', clientMsgId: 'k-1' },
      { roomId: 'plain', userId: carol, body: 'no key', clientMsgId: null },
      { roomId: 'plain', userId: carol, body: 'no key', clientMsgId: null },
      { roomId: 'secret', userId: bob, body: 'not a member, again', clientMsgId: 'b-1' },
      { roomId: 'no-such-room', userId: alice, body: 'lost again', clientMsgId: 'x-1' },
      { roomId: 'plain', userId: alice, body: 'first, third time', clientMsgId: 'k-1' }
    ]
    const outcomes = await insertMessages(db, drafts, newWriteId())
    t.equal(outcomes.length, drafts.length, 'one outcome per draft, in draft order')
    t.strictSame(outcomes.map((o) => o.status), [
      'not_found', 'forbidden', 'created', 'created', 'duplicate', 'created', 'created', 'created', 'created', 'forbidden', 'not_found', 'duplicate'
    ], 'statuses')
    const [, , first, secret, again, otherUser, otherRoom, noKey1, noKey2, , , third] = outcomes
    t.strictSame(again, { ...first, status: 'duplicate' }, 'a repeat in the batch: duplicate with the same id, seq and createdAt')
    t.strictSame(third, { ...first, status: 'duplicate' }, 'a third copy in the batch: the same')
    if (isStored(first) && isStored(otherUser) && isStored(noKey1) && isStored(noKey2) && isStored(otherRoom) && isStored(secret)) {
      t.strictSame([first.seq, otherUser.seq, noKey1.seq, noKey2.seq], [1, 2, 3, 4], 'plain: new messages take 1..4 in draft order')
      t.equal(otherRoom.seq, 1, 'plain-2 starts at 1')
      t.equal(secret.seq, 1, 'secret starts at 1')
      t.equal(new Set([first.id, otherUser.id, otherRoom.id, noKey1.id, noKey2.id, secret.id]).size, 6, 'six distinct messages')
      t.ok(first.createdAt instanceof Date, 'createdAt is a Date')
    }
    const plain = await storedRows(db, 'plain')
    t.strictSame(plain.map((r) => [r.seq, r.user_id, r.body, r.client_msg_id]), [
      [1, alice, 'first', 'k-1'],
      [2, bob, 'same key, other user', 'k-1'],
      [3, carol, 'no key', null],
      [4, carol, 'no key', null]
    ], 'plain holds each new message once; the repeats kept the first body')
    t.equal(await lastSeq(db, 'plain'), 4, 'plain.last_seq')
    t.strictSame((await storedRows(db, 'secret')).map((r) => [r.seq, r.user_id]), [[1, alice]], 'secret holds only the member\'s message')
    t.equal(await lastSeq(db, 'secret'), 1, 'refused drafts used no seq')

    // A later batch: the stored key answers with the original; the room goes on from 4.
    const later = await insertMessages(db, [
      { roomId: 'plain', userId: alice, body: 'resent', clientMsgId: 'k-1' },
      { roomId: 'plain', userId: alice, body: 'new', clientMsgId: 'k-2' },
      { roomId: 'plain', userId: alice, body: 'new, repeated', clientMsgId: 'k-2' }
    ], newWriteId())
    t.strictSame(later[0], { ...first, status: 'duplicate' }, 'a key stored by an earlier batch: duplicate of the original')
    t.match(later[1], { status: 'created', seq: 5 }, 'a new key: seq 5')
    t.strictSame(later[2], { ...later[1], status: 'duplicate' }, 'its repeat: duplicate of it')
    // A batch in which nothing is new changes nothing.
    const nothing = await insertMessages(db, [
      { roomId: 'plain', userId: alice, body: 'resent', clientMsgId: 'k-2' },
      { roomId: 'no-such-room', userId: alice, body: 'lost', clientMsgId: null },
      { roomId: 'secret', userId: carol, body: 'no', clientMsgId: null }
    ], newWriteId())
    t.strictSame(nothing.map((o) => o.status), ['duplicate', 'not_found', 'forbidden'], 'duplicate, not_found, forbidden')
    t.equal(await lastSeq(db, 'plain'), 5, 'plain.last_seq unchanged')
    t.strictSame(await insertMessages(db, [], newWriteId()), [], 'an empty batch')
  })

  t.test('a batch written again with the same write id (after a lost answer): the same outcomes, nothing twice', async (t) => {
    await insertRoom(db, 'again')
    const writeId = newWriteId()
    const drafts: MessageDraft[] = [
      { roomId: 'again', userId: alice, body: 'keyed', clientMsgId: 'a-1' },
      { roomId: 'again', userId: bob, body: 'keyless', clientMsgId: null },
      { roomId: 'again', userId: alice, body: 'keyed, repeated', clientMsgId: 'a-1' },
      { roomId: 'no-such-room', userId: bob, body: 'lost', clientMsgId: null }
    ]
    const first = await insertMessages(db, drafts, writeId)
    t.strictSame(first.map((o) => o.status), ['created', 'created', 'duplicate', 'not_found'], 'the first attempt')
    const second = await insertMessages(db, drafts, writeId)
    t.strictSame(second, first, 'the same write id again: identical outcomes (its own rows are still created)')
    const rows = await storedRows(db, 'again')
    t.strictSame(rows.map((r) => [r.seq, r.user_id, r.body, r.client_msg_id, r.write_id]), [
      [1, alice, 'keyed', 'a-1', writeId],
      [2, bob, 'keyless', null, writeId]
    ], 'stored once each, the keyless one still shown without a clientMsgId')
    t.equal(await lastSeq(db, 'again'), 2, 'last_seq unchanged by the second attempt')
    // Another write with the same drafts is a resend: the key finds the original, a keyless draft is new.
    const other = await insertMessages(db, drafts, newWriteId())
    t.strictSame(other[0], { ...first[0], status: 'duplicate' }, 'another write: the keyed draft is a duplicate of the original')
    t.match(other[1], { status: 'created', seq: 3 }, 'another write: a keyless draft is a new message')
  })

  t.test('concurrent writers: per room seqs 1..N, each key stored once, every outcome a stored row', async (t) => {
    const ROOMS = ['w-a', 'w-b', 'w-c', 'w-d', 'w-e']
    for (const room of ROOMS) await insertRoom(db, room)
    const users = [alice, bob, carol]
    // Postgres: three independent pools on the same database. Embedded: one pool (PGlite runs
    // one statement at a time), the same concurrent calls.
    const extra = backend === 'postgres' ? [await open(), await open()] : []
    const writers = [db, ...extra.map((h) => h.db), ...(extra.length === 0 ? [db, db] : [])]
    // Sized to stay well inside the file's time budget even when writers deadlock (each deadlock
    // costs Postgres's deadlock_timeout, 1 s by default, before one of them is cancelled).
    const LOOPS = 2
    const BATCHES = 8
    const statsBefore = backend === 'postgres' ? await conflictStats(db) : null

    interface Call { writer: number, loop: number, batch: number, drafts: MessageDraft[], outcomes: InsertOutcome[] | null, error: unknown }
    const calls: Call[] = []
    const loop = async (writer: number, l: number): Promise<void> => {
      const next = seededRandom(1000 * writer + l + 1)
      for (let b = 0; b < BATCHES; b++) {
        // Every loop works on the same moving window of keys at the same time, so the same
        // (room, user, key) is inserted by several writers at once; rooms come in random order.
        const size = 5 + Math.floor(next() * 30)
        const rooms = shuffled(ROOMS, next).slice(0, 2 + Math.floor(next() * (ROOMS.length - 1)))
        const drafts: MessageDraft[] = []
        for (let i = 0; i < size; i++) {
          const roomId = rooms[Math.floor(next() * rooms.length)] as string
          const userId = users[Math.floor(next() * users.length)] as string
          if (next() < 0.15) {
            drafts.push({ roomId, userId, body: `w${writer} l${l} b${b} #${i}`, clientMsgId: null })
          } else {
            const key = `k${b * 2 + Math.floor(next() * 4)}`
            drafts.push({ roomId, userId, body: `${roomId}/${userId}/${key}`, clientMsgId: key })
          }
        }
        const call: Call = { writer, loop: l, batch: b, drafts, outcomes: null, error: null }
        calls.push(call)
        try {
          call.outcomes = await insertMessages(writers[writer] as Kysely<Database>, drafts, newWriteId())
        } catch (error) {
          call.error = error
        }
      }
    }
    const started = Date.now()
    await Promise.all(writers.flatMap((_, w) => range(0, LOOPS - 1).map(async (l) => await loop(w, l))))
    t.comment(`${calls.length} calls, ${calls.reduce((n, c) => n + c.drafts.length, 0)} drafts in ${Date.now() - started} ms`)
    if (statsBefore !== null) {
      // A backend flushes its statistics when it exits: end the other pools first.
      for (const handle of extra) await close(handle)
      const after = await conflictStats(db)
      t.comment(`database counters during the run: ${after.rollbacks - statsBefore.rollbacks} rolled back statements (retried unique violations / deadlocks), ${after.deadlocks - statsBefore.deadlocks} deadlocks`)
    }

    const failed = calls.filter((c) => c.error !== null)
    t.strictSame(failed.map((c) => `writer ${c.writer} loop ${c.loop} batch ${c.batch}: ${inspect(c.error)}`), [], 'no call failed')

    const rows = new Map<string, StoredRow>()
    for (const room of ROOMS) {
      const stored = await storedRows(db, room)
      sameSeqs(t, stored.map((r) => r.seq), range(1, stored.length), `${room}: seqs are exactly 1..${stored.length}`)
      t.equal(await lastSeq(db, room), stored.length, `${room}: last_seq is the number of messages`)
      for (const row of stored) rows.set(row.id, row)
    }

    // Every outcome names a stored row that is the draft's message.
    const byKey = new Map<string, Stored[]>()
    const nullIds: string[] = []
    let wrong = 0
    let created = 0
    for (const call of calls) {
      if (call.outcomes === null) continue
      t.equal(call.outcomes.length, call.drafts.length, `writer ${call.writer} loop ${call.loop} batch ${call.batch}: one outcome per draft`)
      const lastInBatch = new Map<string, number>()
      call.drafts.forEach((draft, i) => {
        const outcome = call.outcomes?.[i]
        const row = isStored(outcome) ? rows.get(outcome.id) : undefined
        const matches = isStored(outcome) && row !== undefined && row.room_id === draft.roomId && row.user_id === draft.userId &&
          row.client_msg_id === draft.clientMsgId && row.seq === outcome.seq && row.created_at.getTime() === outcome.createdAt.getTime() &&
          (draft.clientMsgId !== null || row.body === draft.body)
        if (!matches) {
          if (wrong++ < 3) t.fail(`writer ${call.writer} loop ${call.loop} batch ${call.batch} draft ${i}: the outcome is not the draft's stored message`, { draft, outcome, row })
          return
        }
        if (outcome.status === 'created') {
          created++
          // New messages of one room take seqs in draft order within a batch.
          const previous = lastInBatch.get(draft.roomId) ?? 0
          if (outcome.seq <= previous && wrong++ < 3) t.fail(`batch ${call.batch} of writer ${call.writer}: seq ${outcome.seq} after ${previous} in draft order`)
          lastInBatch.set(draft.roomId, outcome.seq)
        }
        if (draft.clientMsgId === null) {
          nullIds.push(outcome.id)
          if (outcome.status !== 'created' && wrong++ < 3) t.fail('a draft without clientMsgId is always new', { draft, outcome })
        } else {
          const key = `${draft.roomId}/${draft.userId}/${draft.clientMsgId}`
          byKey.set(key, [...(byKey.get(key) ?? []), outcome])
        }
      })
    }
    t.equal(wrong, 0, 'every outcome is its draft\'s stored message (room, user, key, seq, createdAt)')
    t.equal(new Set(nullIds).size, nullIds.length, 'drafts without clientMsgId are all distinct messages')

    let keysWrong = 0
    for (const [key, outcomes] of byKey) {
      const ids = new Set(outcomes.map((o) => `${o.id}/${o.seq}/${o.createdAt.toISOString()}`))
      const firsts = outcomes.filter((o) => o.status === 'created').length
      if ((ids.size !== 1 || firsts !== 1) && keysWrong++ < 3) {
        t.fail(`${key}: ${ids.size} different messages, ${firsts} created`, { outcomes: outcomes.map((o) => ({ ...o, createdAt: o.createdAt.toISOString() })) })
      }
    }
    t.equal(keysWrong, 0, `each of ${byKey.size} (room, user, clientMsgId) keys: one message, created exactly once, every outcome the same`)
    const storedKeys = [...rows.values()].filter((r) => r.client_msg_id !== null).map((r) => `${r.room_id}/${r.user_id}/${r.client_msg_id ?? ''}`)
    t.equal(new Set(storedKeys).size, storedKeys.length, 'no key is stored twice')
    t.equal(rows.size, byKey.size + nullIds.length, 'stored rows = distinct keys + keyless drafts: nothing extra was stored')
    t.equal(created, rows.size, 'one created outcome per stored row')
  })
})

/** Rolled-back transactions and deadlocks in this database so far (Postgres statistics, approximate). */
async function conflictStats (db: Kysely<Database>): Promise<{ rollbacks: number, deadlocks: number }> {
  // Statistics are flushed by each backend at most once a second; read them after a pause.
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const { rows } = await sql<{ xact_rollback: string, deadlocks: string }>`
    select xact_rollback, deadlocks from pg_stat_database where datname = current_database()`.execute(db)
  return { rollbacks: Number(rows[0]?.xact_rollback ?? 0), deadlocks: Number(rows[0]?.deadlocks ?? 0) }
}
