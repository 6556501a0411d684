import t from 'tap'
import type { Kysely } from 'kysely'
import { historyPageJson, listMessages, type HistoryQuery } from '../../db/repositories/messages.repository.js'
import type { Database } from '../../db/schema.js'
import { toMessage } from '../../src/protocol/resources.js'
import { range } from '../helpers/chat.js'
import { eachMigratedDatabase, insertRoom, insertUser } from '../helpers/repository-db.js'

// The history page as JSON built by Postgres, against a real database, no server: the same text,
// byte for byte, as the rows `listMessages` reads rendered by `toMessage` and `JSON.stringify`,
// for bodies a JSON encoder could get wrong, every cursor, and timestamps at the millisecond's edges;
// and the statement's own checks (the user, the room, membership of a private room).

const CONTROL_CHARACTERS = String.fromCharCode(...range(1, 31), 127)

const BODIES = [
  'plain ascii',
  '😀👍🏽👨‍👩‍👧‍👦 emoji with modifiers and ZWJ',
  '你好，世界 こんにちは 안녕하세요 مرحبا',
  'e\u0301 combining accent, \u00e9 precomposed',
  'double "quotes", single \'quotes\', `backticks`, back\\slash, /slash',
  '<script>alert("xss")</script> &amp;',
  'line one\nline two\r\nline three\ttabbed\fform feed\bbackspace',
  `control characters: ${CONTROL_CHARACTERS}`,
  '\u2028line separator\u2029paragraph separator\ufeffBOM\uffff',
  '{"looks":"like json"}',
  '   leading and trailing spaces   ',
  '𝕳𝖎𝖘𝖙𝖔𝖗𝖞 astral plane math letters',
  '',
  'x'.repeat(4000)
]

/** Microseconds around the millisecond's edges: `pg` reads them truncated to the millisecond. */
const CREATED_AT = [
  '2026-01-02 03:04:05.000000+00',
  '2026-01-02 03:04:05.000001+00',
  '2026-01-02 03:04:05.000999+00',
  '2026-01-02 03:04:05.999999+00',
  '2026-12-31 23:59:59.999500+00',
  '1999-02-28 12:00:00.123456+00',
  '2026-06-15 10:00:00.5+02',
  '0999-01-01 00:00:00.007+00'
]

/** What the route sent before the database built the page: the rows, mapped and serialised in JS. */
async function pageFromRows (db: Kysely<Database>, query: HistoryQuery): Promise<string> {
  const page = await listMessages(db, query)
  return JSON.stringify({ messages: page.messages.map(toMessage), hasMore: page.hasMore })
}

eachMigratedDatabase(t, 'chat-history-json-', async (t, { db }) => {
  const alice = await insertUser(db, 'alice')
  const bob = await insertUser(db, 'bob.o\'"brien')
  const outsider = await insertUser(db, 'outsider')
  await insertRoom(db, 'json')
  await insertRoom(db, 'json-other')
  await insertRoom(db, 'json-empty')
  await insertRoom(db, 'json-private', true, [alice])
  await insertRoom(db, 'json-big')
  const rows = range(1, 60).map((seq) => ({
    room_id: 'json',
    seq,
    user_id: seq % 2 === 0 ? alice : bob,
    body: BODIES[seq % BODIES.length] as string,
    // Every third a client's key, every fifth a generated one (shown as null), the rest none.
    client_msg_id: seq % 3 === 0 ? `key "${seq}" ü\n` : seq % 5 === 0 ? `~generated.${seq}` : null,
    client_msg_id_generated: seq % 3 !== 0 && seq % 5 === 0,
    created_at: CREATED_AT[seq % CREATED_AT.length] as string
  }))
  await db.insertInto('messages').values(rows).execute()
  await db.insertInto('messages').values(range(1, 5).map((seq) => ({ room_id: 'json-other', seq, user_id: alice, body: `other ${seq}` }))).execute()
  await db.insertInto('messages').values([{ room_id: 'json-private', seq: 1, user_id: alice, body: 'secret' }]).execute()
  const big = 3_000_000_000
  await db.insertInto('messages').values([big - 1, big, big + 1].map((seq) => ({ room_id: 'json-big', seq, user_id: bob, body: `b${seq}` }))).execute()

  t.test('the same text as the rows serialised in JS, for every cursor', async (t) => {
    const queries: Array<Omit<HistoryQuery, 'roomId'> & { roomId?: string }> = [
      { limit: 50 }, { limit: 100 }, { limit: 1 }, { limit: 60 }, { limit: 59 },
      { before: 61, limit: 50 }, { before: 30, limit: 10 }, { before: 11, limit: 10 }, { before: 11, limit: 11 },
      { before: 2, limit: 1 }, { before: 1, limit: 5 }, { before: 0, limit: 5 }, { before: Number.MAX_SAFE_INTEGER, limit: 3 },
      { after: 0, limit: 50 }, { after: 0, limit: 1 }, { after: 50, limit: 10 }, { after: 49, limit: 10 }, { after: 59, limit: 5 },
      { after: 60, limit: 5 }, { after: 1000, limit: 5 },
      { after: 10, before: 20, limit: 5 }, { after: 10, before: 20, limit: 9 }, { after: 10, before: 20, limit: 50 }, { after: 10, before: 11, limit: 5 },
      { roomId: 'json-empty', limit: 50 }, { roomId: 'json-empty', after: 0, limit: 50 },
      { roomId: 'json-big', limit: 2 }, { roomId: 'json-big', after: big - 1, limit: 5 }, { roomId: 'json-big', before: big + 1, limit: 1 },
      { roomId: 'json-other', limit: 50 }
    ]
    for (const { roomId = 'json', ...cursor } of queries) {
      const query = { roomId, ...cursor }
      const page = await historyPageJson(db, { ...query, userId: alice })
      const expected = await pageFromRows(db, query)
      t.strictSame(page, { status: 'ok', json: expected }, `${JSON.stringify(query)}: byte for byte`)
    }
  })

  t.test('every body and key comes back as stored', async (t) => {
    const page = await historyPageJson(db, { roomId: 'json', after: 0, limit: 100, userId: outsider })
    if (page.status !== 'ok') throw new Error(`expected a page, got ${page.status}`)
    const { messages, hasMore } = JSON.parse(page.json) as { messages: Array<{ seq: number, body: string, clientMsgId: string | null, createdAt: string }>, hasMore: boolean }
    t.equal(hasMore, false)
    t.strictSame(messages.map((m) => m.seq), range(1, 60))
    t.strictSame(messages.map((m) => m.body), rows.map((r) => r.body), 'bodies')
    t.strictSame(messages.map((m) => m.clientMsgId), rows.map((r) => r.client_msg_id_generated ? null : r.client_msg_id), 'clientMsgId: null when generated or none')
    // Seq n was stored at CREATED_AT[n % 8].
    const createdAt = (seq: number): string | undefined => messages[seq - 1]?.createdAt
    t.equal(createdAt(1), '2026-01-02T03:04:05.000Z', 'one microsecond past the millisecond: truncated')
    t.equal(createdAt(3), '2026-01-02T03:04:05.999Z', '999,999 µs: truncated, not rounded up')
    t.equal(createdAt(6), '2026-06-15T08:00:00.500Z', 'another offset: in UTC')
    t.equal(createdAt(7), '0999-01-01T00:00:00.007Z', 'a year of three digits: four, as toISOString writes it')
  })

  t.test('the reader\'s checks', async (t) => {
    t.strictSame(await historyPageJson(db, { roomId: 'json', limit: 5, userId: '987654321' }), { status: 'user_gone' }, 'a user that does not exist')
    t.strictSame(await historyPageJson(db, { roomId: 'no-such-room', limit: 5, userId: '987654321' }), { status: 'user_gone' }, 'the user is checked first')
    t.strictSame(await historyPageJson(db, { roomId: 'no-such-room', limit: 5, userId: alice }), { status: 'not_found' }, 'an unknown room')
    t.strictSame(await historyPageJson(db, { roomId: 'json-private', limit: 5, userId: outsider }), { status: 'forbidden' }, 'a private room, not a member')
    const member = await historyPageJson(db, { roomId: 'json-private', limit: 5, userId: alice })
    t.strictSame(member, { status: 'ok', json: await pageFromRows(db, { roomId: 'json-private', limit: 5 }) }, 'a member of a private room')
    t.strictSame(await historyPageJson(db, { roomId: 'json', limit: 1, userId: outsider }), { status: 'ok', json: await pageFromRows(db, { roomId: 'json', limit: 1 }) }, 'a public room needs no membership')
  })
})
