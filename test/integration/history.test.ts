import t, { type Test } from 'tap'
import type { Message } from '../../src/protocol/resources.js'
import { assertError } from '../helpers/assertions.js'
import { createRoom, range } from '../helpers/chat.js'
import type { ApiResponse } from '../helpers/http.js'
import { eachBackend, startTestServer } from '../helpers/server.js'

interface Author { id: string, username: string }

/** A short ASCII-only label: some bodies hold line separators that would break the TAP output. */
function printable (text: string): string {
  return text.slice(0, 30).replace(/[^\x20-\x7e]/gu, (c) => `\\u{${(c.codePointAt(0) ?? 0).toString(16)}}`)
}

// Bodies a careless layer (JSON, the uWS bridge, SQL) could mangle; each must come back unchanged.
const TRICKY_BODIES = [
  'plain ascii',
  '😀👍🏽👨‍👩‍👧‍👦 emoji with modifiers and ZWJ',
  '你好，世界 こんにちは 안녕하세요',
  'مرحبا بالعالم (right-to-left)',
  'e\u0301 combining accent, \u00e9 precomposed',
  'double "quotes", single \'quotes\', `backticks`',
  '<script>alert("xss")</script>',
  "'; DROP TABLE messages; --",
  "Robert'); DELETE FROM users WHERE ('1'='1",
  'back\\slash \\n not a newline, \\u0000 not a NUL',
  'line one\nline two\r\nline three\ttabbed',
  '\u2028line separator\u2029paragraph separator',
  '{"looks":"like json"}',
  '   leading and trailing spaces   ',
  '%00%2F url-encoded looking',
  '𝕳𝖎𝖘𝖙𝖔𝖗𝖞 astral plane math letters',
  'x'.repeat(4000)
]

eachBackend(t, async (t, backend) => {
  const { api, server } = await startTestServer(t, backend)
  const db = server.app.db
  const alice = await api.user('alice')
  const bob = await api.user('bob')
  const outsider = await api.user('outsider')

  /**
   * Stores messages the way the (future) send path will: rows in `messages`, and the room's
   * last_seq advanced to the newest. Returns them as the API must render them.
   */
  const insertMessages = async (room: string, rows: Array<{ seq: number, author: Author, body: string, clientMsgId: string | null }>): Promise<Message[]> => {
    const inserted = await db.insertInto('messages')
      .values(rows.map((r) => ({ room_id: room, seq: r.seq, user_id: r.author.id, body: r.body, client_msg_id: r.clientMsgId })))
      .returning(['id', 'seq', 'created_at'])
      .execute()
    const maxSeq = Math.max(...rows.map((r) => r.seq))
    await db.updateTable('rooms').set({ last_seq: maxSeq }).where('id', '=', room).execute()
    // RETURNING order is not promised by SQL, so rows are matched up by seq.
    const bySeq = new Map(inserted.map((row) => [Number(row.seq), row]))
    return rows.map((r) => {
      const row = bySeq.get(r.seq)
      if (row === undefined) throw new Error(`insert did not return seq ${r.seq}`)
      return { id: row.id, room, seq: r.seq, userId: r.author.id, username: r.author.username, body: r.body, clientMsgId: r.clientMsgId, createdAt: row.created_at.toISOString() }
    })
  }
  const history = async (room: string, query = '', token = alice.token): Promise<ApiResponse> =>
    await api.request('GET', `/rooms/${room}/messages${query === '' ? '' : `?${query}`}`, { token })

  // 250 messages alternating authors; every third carries a clientMsgId, the rest null.
  await createRoom(api, alice, 'hist')
  const hist = await insertMessages('hist', range(1, 250).map((seq) => ({
    seq,
    author: seq % 2 === 0 ? bob : alice,
    body: `message ${seq}`,
    clientMsgId: seq % 3 === 0 ? `client-${seq}` : null
  })))
  // Another room whose messages must never leak into hist's pages, with overlapping seqs.
  await createRoom(api, alice, 'elsewhere')
  await insertMessages('elsewhere', range(1, 300).map((seq) => ({ seq, author: alice, body: `elsewhere ${seq}`, clientMsgId: `client-${seq}` })))
  const bySeq = (seqs: number[]): Message[] => seqs.map((s) => {
    const m = hist[s - 1]
    if (m === undefined) throw new Error(`no message ${s}`)
    return m
  })

  /** Asserts a page is exactly these hist messages (whole objects, in this order) and hasMore. */
  const isPage = (t: Test, res: ApiResponse, seqs: number[], hasMore: boolean, what: string): void => {
    t.equal(res.status, 200, `${what}: status`)
    t.strictSame(Object.keys(res.body ?? {}).sort(), ['hasMore', 'messages'], `${what}: body fields`)
    t.strictSame((res.body?.messages as Message[] | undefined)?.map((m) => m.seq), seqs, `${what}: seqs`)
    t.strictSame(res.body?.messages, bySeq(seqs), `${what}: messages`)
    t.equal(res.body?.hasMore, hasMore, `${what}: hasMore`)
  }

  t.test('every history request needs a valid bearer token', async (t) => {
    assertError(t, await api.request('GET', '/rooms/hist/messages'), 401, 'unauthorized', 'no token')
    assertError(t, await api.request('GET', '/rooms/hist/messages', { headers: { authorization: 'Bearer nope' } }), 401, 'unauthorized', 'garbage token')
    assertError(t, await api.request('GET', '/rooms/hist/messages', { headers: { authorization: alice.token } }), 401, 'unauthorized', 'token without Bearer')
    assertError(t, await api.request('GET', '/rooms/no-such-room/messages'), 401, 'unauthorized', 'unknown room, no token')
    // Authentication comes before validation: without a token, bad input is still 401.
    assertError(t, await api.request('GET', '/rooms/hist/messages?limit=0'), 401, 'unauthorized', 'invalid limit, no token')
  })

  t.test('messages have exactly the contract fields and types', async (t) => {
    const res = await history('hist', 'limit=6')
    t.equal(res.status, 200)
    const [first] = res.body.messages as Message[]
    t.strictSame(Object.keys(first ?? {}).sort(), ['body', 'clientMsgId', 'createdAt', 'id', 'room', 'seq', 'userId', 'username'])
    for (const m of res.body.messages as Message[]) {
      t.type(m.id, 'string', 'id is a string')
      t.match(m.id, /^[1-9][0-9]*$/, 'id is a decimal id')
      t.type(m.userId, 'string', 'userId is a string')
      t.type(m.seq, 'number', 'seq is a number')
      t.equal(new Date(m.createdAt).toISOString(), m.createdAt, 'createdAt is ISO-8601')
    }
    // seq 245..250: authors alternate, 246 and 249 carry a clientMsgId, the others null.
    const [m245, m246] = res.body.messages as Message[]
    t.equal(m245?.userId, alice.id)
    t.equal(m245?.username, alice.username)
    t.equal(m245?.clientMsgId, null, 'clientMsgId is null when none was given')
    t.equal(m246?.userId, bob.id)
    t.equal(m246?.username, bob.username)
    t.equal(m246?.clientMsgId, 'client-246')
  })

  t.test('without a cursor: the newest limit messages, ascending', async (t) => {
    isPage(t, await history('hist'), range(201, 250), true, 'default limit 50')
    isPage(t, await history('hist', 'limit=100'), range(151, 250), true, 'limit=100')
    isPage(t, await history('hist', 'limit=1'), [250], true, 'limit=1')
    const empty = await history('empty-room-not-created-yet')
    assertError(t, empty, 404, 'not_found', 'unknown room')
    await createRoom(api, alice, 'empty')
    const res = await history('empty')
    t.equal(res.status, 200)
    t.strictSame(res.body, { messages: [], hasMore: false }, 'a room without messages')
  })

  t.test('before: the newest limit with a smaller seq', async (t) => {
    isPage(t, await history('hist', 'before=251'), range(201, 250), true, 'before=251')
    isPage(t, await history('hist', 'before=100&limit=10'), range(90, 99), true, 'before=100 limit=10')
    isPage(t, await history('hist', 'before=11&limit=10'), range(1, 10), false, 'exactly the last 10')
    isPage(t, await history('hist', 'before=11&limit=11'), range(1, 10), false, 'fewer than limit')
    isPage(t, await history('hist', 'before=3&limit=1'), [2], true, 'before=3 limit=1')
    isPage(t, await history('hist', 'before=2&limit=1'), [1], false, 'before=2 limit=1')
    isPage(t, await history('hist', 'before=1'), [], false, 'before=1')
    isPage(t, await history('hist', 'before=0'), [], false, 'before=0')
    isPage(t, await history('hist', 'before=1000000'), range(201, 250), true, 'before far beyond lastSeq')
    isPage(t, await history('hist', `before=${Number.MAX_SAFE_INTEGER}&limit=2`), [249, 250], true, 'before=MAX_SAFE_INTEGER')
  })

  t.test('after: the oldest limit with a larger seq', async (t) => {
    isPage(t, await history('hist', 'after=0'), range(1, 50), true, 'after=0')
    isPage(t, await history('hist', 'after=0&limit=1'), [1], true, 'after=0 limit=1')
    isPage(t, await history('hist', 'after=100&limit=10'), range(101, 110), true, 'after=100 limit=10')
    isPage(t, await history('hist', 'after=240&limit=10'), range(241, 250), false, 'exactly the last 10')
    isPage(t, await history('hist', 'after=240&limit=11'), range(241, 250), false, 'fewer than limit')
    isPage(t, await history('hist', 'after=249'), [250], false, 'after=249')
    isPage(t, await history('hist', 'after=250'), [], false, 'after=lastSeq')
    isPage(t, await history('hist', 'after=1000000'), [], false, 'after beyond lastSeq')
  })

  t.test('after and before: the range between, starting right after after', async (t) => {
    isPage(t, await history('hist', 'after=10&before=20&limit=5'), range(11, 15), true, 'more in range than limit')
    isPage(t, await history('hist', 'before=20&after=10&limit=9'), range(11, 19), false, 'range exactly filled')
    isPage(t, await history('hist', 'after=10&before=20'), range(11, 19), false, 'range smaller than the default limit')
    isPage(t, await history('hist', 'after=10&before=11'), [], false, 'empty range')
    isPage(t, await history('hist', 'after=0&before=251&limit=100'), range(1, 100), true, 'whole history as range')
    isPage(t, await history('hist', 'after=245&before=1000'), range(246, 250), false, 'before beyond lastSeq')
    assertError(t, await history('hist', 'after=10&before=10'), 400, 'bad_request', 'after == before')
    assertError(t, await history('hist', 'after=11&before=10'), 400, 'bad_request', 'after > before')
    assertError(t, await history('hist', 'after=0&before=0'), 400, 'bad_request', 'after == before == 0')
  })

  t.test('paging back with before= visits every seq exactly once', async (t) => {
    for (const limit of [100, 7]) {
      const seen: number[] = []
      let query = `limit=${limit}`
      let pages = 0
      for (;;) {
        const res = await history('hist', query)
        t.equal(res.status, 200)
        const page = res.body.messages as Message[]
        pages++
        if (pages > 100) throw new Error('paging did not end')
        t.strictSame(page, bySeq(page.map((m) => m.seq)), `limit ${limit} page ${pages} are the stored messages`)
        // Each page is ascending and ends right below the previous page's first seq.
        t.strictSame(page.map((m) => m.seq), range(page[0]?.seq ?? 1, (page[0]?.seq ?? 1) + page.length - 1), `limit ${limit} page ${pages} is contiguous and ascending`)
        seen.unshift(...page.map((m) => m.seq))
        if (!(res.body.hasMore as boolean)) break
        t.equal(page.length, limit, 'a page with more after it is full')
        query = `before=${page[0]?.seq ?? 0}&limit=${limit}`
      }
      t.strictSame(seen, range(1, 250), `limit ${limit}: every seq once, no gaps`)
      t.equal(pages, Math.ceil(250 / limit), `limit ${limit}: page count`)
    }
  })

  t.test('paging forward with after= visits every seq exactly once', async (t) => {
    for (const limit of [100, 7]) {
      const seen: number[] = []
      let after = 0
      let pages = 0
      for (;;) {
        const res = await history('hist', `after=${after}&limit=${limit}`)
        t.equal(res.status, 200)
        const page = res.body.messages as Message[]
        pages++
        if (pages > 100) throw new Error('paging did not end')
        t.strictSame(page.map((m) => m.seq), range(after + 1, after + page.length), `limit ${limit} page ${pages} starts right after ${after}`)
        t.strictSame(page, bySeq(page.map((m) => m.seq)), `limit ${limit} page ${pages} are the stored messages`)
        seen.push(...page.map((m) => m.seq))
        if (!(res.body.hasMore as boolean)) break
        t.equal(page.length, limit, 'a page with more after it is full')
        after = page[page.length - 1]?.seq ?? after
      }
      t.strictSame(seen, range(1, 250), `limit ${limit}: every seq once, no gaps`)
      t.equal(pages, Math.ceil(250 / limit), `limit ${limit}: page count`)
    }
  })

  t.test('messages of other rooms never appear', async (t) => {
    const all = [...(await history('hist', 'after=0&limit=100')).body.messages, ...(await history('hist', 'after=100&limit=100')).body.messages, ...(await history('hist', 'after=200&limit=100')).body.messages] as Message[]
    t.equal(all.length, 250)
    t.ok(all.every((m) => m.room === 'hist' && m.body.startsWith('message ')), 'only hist messages in hist')
    const other = await history('elsewhere', 'limit=3')
    t.strictSame((other.body.messages as Message[]).map((m) => [m.room, m.seq, m.body]), [['elsewhere', 298, 'elsewhere 298'], ['elsewhere', 299, 'elsewhere 299'], ['elsewhere', 300, 'elsewhere 300']])
    isPage(t, await history('general'), [], false, 'general has no messages')
  })

  t.test('bodies come back exactly as stored', async (t) => {
    await createRoom(api, alice, 'tricky')
    const stored = await insertMessages('tricky', TRICKY_BODIES.map((body, i) => ({ seq: i + 1, author: bob, body, clientMsgId: `ü-${i} "q" <x>` })))
    const res = await history('tricky', 'limit=100')
    t.equal(res.status, 200)
    t.strictSame(res.body.messages, stored, 'whole messages')
    const returned = res.body.messages as Message[]
    for (const [i, body] of TRICKY_BODIES.entries()) {
      // Compare bytes too: a normalisation (NFC) or re-encoding would still look alike on screen.
      t.ok(Buffer.from(returned[i]?.body ?? '', 'utf8').equals(Buffer.from(body, 'utf8')), `byte-exact: body ${i} ${printable(body)}`)
    }
    t.match(res.headers.get('content-type') ?? '', /^application\/json; charset=utf-8$/i, 'served as UTF-8 JSON')
  })

  t.test('seqs beyond 32 bits are numbers and page correctly', async (t) => {
    await createRoom(api, alice, 'big')
    const big = 3_000_000_000
    const stored = await insertMessages('big', [big - 1, big, big + 1].map((seq) => ({ seq, author: alice, body: `b${seq}`, clientMsgId: null })))
    const res = await history('big', `after=${big - 1}`)
    t.equal(res.status, 200)
    t.strictSame(res.body, { messages: stored.slice(1), hasMore: false })
    const back = await history('big', `before=${big + 1}&limit=1`)
    t.strictSame(back.body, { messages: stored.slice(1, 2), hasMore: true })
    const room = await api.request('GET', '/rooms/big', { token: alice.token })
    t.equal(room.body.lastSeq, big + 1, 'lastSeq is a number beyond 32 bits')
  })

  t.test('GET /rooms/:id reports lastSeq of stored history', async (t) => {
    const room = await api.request('GET', '/rooms/hist', { token: outsider.token })
    t.equal(room.status, 200)
    t.equal(room.body.lastSeq, 250)
  })

  t.test('invalid query parameters are 400', async (t) => {
    const invalid = [
      'limit=0', 'limit=101', 'limit=-1', 'limit=1.5', 'limit=abc', 'limit=',
      'before=abc', 'before=-1', 'before=1.5', `before=${Number.MAX_SAFE_INTEGER + 1}`,
      'after=abc', 'after=-1', 'after=1.5', `after=${Number.MAX_SAFE_INTEGER + 1}`
    ]
    for (const query of invalid) {
      assertError(t, await history('hist', query), 400, 'bad_request', query)
    }
    isPage(t, await history('hist', 'limit=100'), range(151, 250), true, 'control: limit=100 is fine')
    assertError(t, await history('a%2Fb'), 400, 'bad_request', 'invalid room id')
    assertError(t, await history('no-such-room'), 404, 'not_found', 'unknown room')
  })

  t.test('private rooms: members read, others get 403', async (t) => {
    await createRoom(api, alice, 'private-hist', true)
    const stored = await insertMessages('private-hist', [{ seq: 1, author: alice, body: 'secret', clientMsgId: null }])
    const own = await history('private-hist')
    t.equal(own.status, 200)
    t.strictSame(own.body, { messages: stored, hasMore: false }, 'the creator reads it')
    assertError(t, await history('private-hist', '', outsider.token), 403, 'forbidden', 'a non-member')
    assertError(t, await history('private-hist', 'after=0', outsider.token), 403, 'forbidden', 'a non-member with a cursor')

    t.equal((await api.request('POST', '/rooms/private-hist/members', { token: alice.token, json: { userId: outsider.id } })).status, 204)
    const added = await history('private-hist', '', outsider.token)
    t.equal(added.status, 200)
    t.strictSame(added.body, { messages: stored, hasMore: false }, 'once added, the user reads it')

    t.equal((await api.request('DELETE', `/rooms/private-hist/members/${outsider.id}`, { token: alice.token })).status, 204)
    assertError(t, await history('private-hist', '', outsider.token), 403, 'forbidden', 'once removed, 403 again')
    // Public rooms need no membership to read.
    isPage(t, await history('hist', 'limit=1', outsider.token), [250], true, 'a non-member reads a public room')
  })
})
