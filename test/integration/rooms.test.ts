import t, { type Test } from 'tap'
import { assertError } from '../helpers/assertions.js'
import type { ApiResponse } from '../helpers/http.js'
import { eachBackend, startTestServer } from '../helpers/server.js'
import { connect } from '../helpers/socket.js'
import { b64url, decodeJwt, signJwt } from '../helpers/tokens.js'

// An id that fits the id pattern but that no user or room will ever have in a fresh database.
const UNKNOWN_USER = '999999999999'

function isIsoDate (value: unknown): boolean {
  return typeof value === 'string' && !Number.isNaN(Date.parse(value)) && new Date(value).toISOString() === value
}

/** `readSeq` is the caller's position (0 unless given); `unread` follows from it. */
interface ExpectedRoom { id: string, title: string, private: boolean, createdBy: string | null, lastSeq: number, readSeq?: number }

/** Asserts a Room: exactly the contract fields, with createdAt an ISO-8601 timestamp. */
function isRoom (t: Test, room: any, expected: ExpectedRoom, what: string): void {
  t.strictSame(Object.keys(room ?? {}).sort(), ['createdAt', 'createdBy', 'id', 'lastSeq', 'private', 'readSeq', 'title', 'unread'], `${what}: room fields`)
  const { createdAt, ...rest } = room ?? {}
  const readSeq = expected.readSeq ?? 0
  t.strictSame(rest, { ...expected, readSeq, unread: expected.lastSeq - readSeq }, `${what}: room values`)
  t.ok(isIsoDate(createdAt), `${what}: createdAt is ISO-8601 (${String(createdAt)})`)
}

eachBackend(t, async (t, backend) => {
  const { api, baseUrl } = await startTestServer(t, backend)
  const owner = await api.user('owner')
  const member = await api.user('member')
  const outsider = await api.user('outsider')
  const target = await api.user('target')

  const get = async (path: string, token: string): Promise<ApiResponse> => await api.request('GET', path, { token })
  const roomIds = async (token: string): Promise<string[]> => {
    const res = await get('/rooms', token)
    if (res.status !== 200) throw new Error(`GET /rooms: ${res.status} ${res.text}`)
    return (res.body.rooms as Array<{ id: string }>).map((r) => r.id)
  }
  const create = async (token: string, json: unknown): Promise<ApiResponse> => await api.request('POST', '/rooms', { token, json })
  const addMember = async (token: string, room: string, userId: unknown): Promise<ApiResponse> =>
    await api.request('POST', `/rooms/${room}/members`, { token, json: { userId } })
  const removeMember = async (token: string, room: string, userId: string): Promise<ApiResponse> =>
    await api.request('DELETE', `/rooms/${room}/members/${userId}`, { token })

  // Runs first, while `general` is the only room, so the listing can be compared whole.
  t.test('a fresh server has exactly the public room general', async (t) => {
    const res = await get('/rooms', owner.token)
    t.equal(res.status, 200)
    t.strictSame(Object.keys(res.body), ['rooms'])
    t.equal(res.body.rooms.length, 1)
    isRoom(t, res.body.rooms[0], { id: 'general', title: 'General', private: false, createdBy: null, lastSeq: 0 }, 'listed general')
    const one = await get('/rooms/general', outsider.token)
    t.equal(one.status, 200)
    t.strictSame(one.body, res.body.rooms[0], 'GET /rooms/general is the listed room')
  })

  t.test('every room route refuses requests without a valid bearer token', async (t) => {
    const now = Math.floor(Date.now() / 1000)
    // aud, the issuing database, is copied from a token the server issued.
    const claims = { sub: owner.id, username: owner.username, aud: decodeJwt(owner.token).payload.aud }
    const HS256 = { alg: 'HS256', typ: 'JWT' }
    const valid = signJwt(HS256, { ...claims, iat: now, exp: now + 600 })
    // The hand-made token must work, or the refusals below would prove nothing about their specific defect.
    t.equal((await api.request('GET', '/rooms', { headers: { authorization: `Bearer ${valid}` } })).status, 200, 'control: a hand-signed valid token is accepted')

    const badHeaders: Record<string, Record<string, string>> = {
      'no Authorization header': {},
      'empty Authorization header': { authorization: '' },
      'Bearer without a token': { authorization: 'Bearer ' },
      'not a JWT': { authorization: 'Bearer not-a-jwt' },
      'token without the Bearer scheme': { authorization: owner.token },
      'Basic credentials': { authorization: 'Basic dXNlcjpwYXNz' },
      'signed with another secret': { authorization: `Bearer ${signJwt(HS256, { ...claims, iat: now, exp: now + 600 }, { secret: 'another-secret-that-is-at-least-32-bytes!!' })}` },
      expired: { authorization: `Bearer ${signJwt(HS256, { ...claims, iat: now - 7200, exp: now - 3600 })}` },
      'no exp claim': { authorization: `Bearer ${signJwt(HS256, { ...claims, iat: now })}` },
      'alg none': { authorization: `Bearer ${signJwt({ alg: 'none', typ: 'JWT' }, { ...claims, iat: now, exp: now + 600 }, { unsigned: true })}` },
      'tampered payload': { authorization: `Bearer ${owner.token.split('.')[0] ?? ''}.${b64url({ ...claims, sub: member.id, exp: now + 600 })}.${owner.token.split('.')[2] ?? ''}` }
    }
    const routes: Array<[string, string, unknown]> = [
      ['GET', '/rooms', undefined],
      ['POST', '/rooms', { id: 'never-created' }],
      ['GET', '/rooms/general', undefined],
      ['POST', '/rooms/general/members', { userId: owner.id }],
      ['DELETE', `/rooms/general/members/${owner.id}`, undefined]
    ]
    for (const [method, path, json] of routes) {
      for (const [label, headers] of Object.entries(badHeaders)) {
        const res = await api.request(method, path, { headers, json })
        assertError(t, res, 401, 'unauthorized', `${method} ${path} with ${label}`)
      }
    }
    // None of the refused creations may have happened.
    t.notOk((await roomIds(owner.token)).includes('never-created'), 'no room was created without a token')
  })

  t.test('authentication is checked before the request is validated', async (t) => {
    // Without a token the caller must learn nothing else, not even that its input is malformed.
    assertError(t, await api.request('POST', '/rooms', { json: { id: 'a/b' } }), 401, 'unauthorized', 'POST /rooms invalid body, no token')
    assertError(t, await api.request('POST', '/rooms', { json: { id: 'x', extra: 1 } }), 401, 'unauthorized', 'POST /rooms extra field, no token')
    assertError(t, await api.request('GET', '/rooms/a%2Fb'), 401, 'unauthorized', 'GET /rooms/a%2Fb, no token')
    assertError(t, await api.request('POST', '/rooms/general/members', { json: { userId: 'abc' } }), 401, 'unauthorized', 'POST members invalid userId, no token')
    assertError(t, await api.request('DELETE', '/rooms/general/members/abc'), 401, 'unauthorized', 'DELETE members invalid userId, no token')
  })

  t.test('POST /rooms creates a public room with defaults', async (t) => {
    const before = Date.now()
    const res = await create(owner.token, { id: 'pub' })
    t.equal(res.status, 201)
    isRoom(t, res.body, { id: 'pub', title: 'pub', private: false, createdBy: owner.id, lastSeq: 0 }, 'created room')
    // Same machine clock for server and test, so a minute of slack is generous.
    t.ok(Math.abs(Date.parse(res.body.createdAt) - before) < 60_000, 'createdAt is now')
    const fetched = await get('/rooms/pub', outsider.token)
    t.equal(fetched.status, 200)
    t.strictSame(fetched.body, res.body, 'GET returns what POST returned')
    t.ok((await roomIds(outsider.token)).includes('pub'), 'a public room is listed for everyone')
  })

  t.test('POST /rooms keeps title and private, and accepts every id character', async (t) => {
    const res = await create(owner.token, { id: 'Team:dev.ops-1_x', title: 'Dev "ops" <b>チーム</b> 🚀', private: true })
    t.equal(res.status, 201)
    isRoom(t, res.body, { id: 'Team:dev.ops-1_x', title: 'Dev "ops" <b>チーム</b> 🚀', private: true, createdBy: owner.id, lastSeq: 0 }, 'created private room')
    const fetched = await get('/rooms/Team:dev.ops-1_x', owner.token)
    t.equal(fetched.status, 200)
    t.strictSame(fetched.body, res.body)

    const explicitPublic = await create(owner.token, { id: 'explicit-public', private: false, title: 'x' })
    t.equal(explicitPublic.status, 201)
    isRoom(t, explicitPublic.body, { id: 'explicit-public', title: 'x', private: false, createdBy: owner.id, lastSeq: 0 }, 'private: false')
  })

  t.test('POST /rooms boundaries: id 1 and 64 chars, title 1 and 200 chars', async (t) => {
    const longId = 'a'.repeat(64)
    const cases: Array<[unknown, ExpectedRoom]> = [
      [{ id: 'z' }, { id: 'z', title: 'z', private: false, createdBy: owner.id, lastSeq: 0 }],
      [{ id: longId }, { id: longId, title: longId, private: false, createdBy: owner.id, lastSeq: 0 }],
      [{ id: 'title-1', title: 't' }, { id: 'title-1', title: 't', private: false, createdBy: owner.id, lastSeq: 0 }],
      [{ id: 'title-200', title: 'T'.repeat(200) }, { id: 'title-200', title: 'T'.repeat(200), private: false, createdBy: owner.id, lastSeq: 0 }],
      // Lengths are counted in characters (JSON Schema counts code points), so 200 emoji fit.
      [{ id: 'title-emoji', title: '😀'.repeat(200) }, { id: 'title-emoji', title: '😀'.repeat(200), private: false, createdBy: owner.id, lastSeq: 0 }]
    ]
    for (const [json, expected] of cases) {
      const res = await create(owner.token, json)
      t.equal(res.status, 201, `create ${JSON.stringify(json).slice(0, 60)}`)
      isRoom(t, res.body, expected, expected.id)
    }
    const fetched = await get(`/rooms/${longId}`, owner.token)
    t.equal(fetched.status, 200, 'a 64-char id can be fetched')
  })

  t.test('POST /rooms rejects invalid bodies with 400', async (t) => {
    const invalid: Record<string, unknown> = {
      'id with a slash': { id: 'a/b' },
      'id "+"': { id: '+' },
      'id "#"': { id: '#' },
      'id with a space': { id: 'a b' },
      'id with a non-ASCII letter': { id: 'café' },
      'empty id': { id: '' },
      '65-char id': { id: 'a'.repeat(65) },
      'numeric id': { id: 5 },
      'null id': { id: null },
      'missing id': { title: 'no id' },
      'empty title': { id: 'bad-title-0', title: '' },
      '201-char title': { id: 'bad-title-201', title: 'T'.repeat(201) },
      '201-emoji title': { id: 'bad-title-emoji', title: '😀'.repeat(201) },
      'numeric title': { id: 'bad-title-num', title: 5 },
      'null title': { id: 'bad-title-null', title: null },
      'private "yes"': { id: 'bad-private', private: 'yes' },
      'private 1': { id: 'bad-private-1', private: 1 },
      'private null': { id: 'bad-private-null', private: null },
      'extra field': { id: 'bad-extra', owner: '1' },
      'array body': [{ id: 'bad-array' }],
      'string body': 'bad-string',
      'null body': null
    }
    for (const [label, json] of Object.entries(invalid)) {
      assertError(t, await create(owner.token, json), 400, 'bad_request', label)
    }
    assertError(t, await api.request('POST', '/rooms', { token: owner.token }), 400, 'bad_request', 'no body')
    assertError(t, await api.request('POST', '/rooms', { token: owner.token, raw: '{"id":', contentType: 'application/json' }), 400, 'bad_request', 'malformed JSON')
    assertError(t, await api.request('POST', '/rooms', { token: owner.token, raw: 'id=bad-form', contentType: 'application/x-www-form-urlencoded' }), 400, 'bad_request', 'form body')
    assertError(t, await api.request('POST', '/rooms', { token: owner.token, raw: '{"id":"bad-text"}', contentType: 'text/plain' }), 400, 'bad_request', 'JSON sent as text/plain')
    const ids = await roomIds(owner.token)
    t.strictSame(ids.filter((id) => id.startsWith('bad-')), [], 'no invalid request created a room')
  })

  t.test('POST /rooms refuses a body over the limit with 413', async (t) => {
    const res = await create(owner.token, { id: 'huge', title: 'x'.repeat(70 * 1024) })
    assertError(t, res, 413, 'payload_too_large', 'a 70 KiB body')
  })

  t.test('POST /rooms with an existing id is 409 conflict', async (t) => {
    assertError(t, await create(member.token, { id: 'general' }), 409, 'conflict', 'general')
    assertError(t, await create(member.token, { id: 'pub', title: 'again' }), 409, 'conflict', 'pub by another user')
    assertError(t, await create(owner.token, { id: 'pub', private: true }), 409, 'conflict', 'pub by its creator')
    // The loser of the conflict must not have changed the existing room.
    const pub = await get('/rooms/pub', owner.token)
    isRoom(t, pub.body, { id: 'pub', title: 'pub', private: false, createdBy: owner.id, lastSeq: 0 }, 'pub unchanged')
  })

  t.test('GET /rooms is sorted by id in code point order', async (t) => {
    // Punctuation and case are where a linguistic collation would reorder ids differently per server.
    const ids = ['sort-b', 'sort-B', 'sort-a_b', 'sort-a-b', 'sort-a.b', 'sort-a:b', 'sort-ab', 'sort-A', 'sort-0', 'sort-a']
    for (const id of ids) t.equal((await create(member.token, { id })).status, 201, `create ${id}`)
    const listed = await roomIds(outsider.token)
    const sorted = [...listed].sort()
    t.strictSame(listed, sorted, 'the whole listing is in code point order')
    t.strictSame(listed.filter((id) => id.startsWith('sort-')), [...ids].sort(), 'the new rooms in code point order')
  })

  t.test('GET /rooms lists private rooms only to their members', async (t) => {
    const res = await create(owner.token, { id: 'secret', title: 'Secret', private: true })
    t.equal(res.status, 201)
    isRoom(t, res.body, { id: 'secret', title: 'Secret', private: true, createdBy: owner.id, lastSeq: 0 }, 'secret')
    const list = await get('/rooms', owner.token)
    const listed = (list.body.rooms as Array<{ id: string }>).find((r) => r.id === 'secret')
    t.strictSame(listed, res.body, 'the creator sees the private room, as created')
    t.notOk((await roomIds(member.token)).includes('secret'), 'a non-member does not see it')
    t.notOk((await roomIds(outsider.token)).includes('Team:dev.ops-1_x'), 'nor other private rooms')
    t.ok((await roomIds(member.token)).includes('pub'), 'public rooms are listed to non-members')
  })

  t.test('GET /rooms/:id: unknown and invisible private rooms are the same 404', async (t) => {
    const unknown = await get('/rooms/no-such-room', outsider.token)
    const hidden = await get('/rooms/secret', outsider.token)
    assertError(t, unknown, 404, 'not_found', 'unknown room')
    assertError(t, hidden, 404, 'not_found', 'private room, not a member')
    t.notMatch(hidden.body.message, /private|member/i, 'the message does not say the room exists but is private')
    const visible = await get('/rooms/secret', owner.token)
    t.equal(visible.status, 200, 'the member still gets it')
  })

  t.test('GET /rooms/:id rejects invalid ids with 400', async (t) => {
    for (const path of ['/rooms/a%2Fb', '/rooms/%2B', '/rooms/+', '/rooms/%23', '/rooms/a%20b', '/rooms/caf%C3%A9', `/rooms/${'a'.repeat(65)}`]) {
      assertError(t, await get(path, owner.token), 400, 'bad_request', `GET ${path}`)
    }
  })

  t.test('malformed URLs and overlong ids are 400 with the contract body', async (t) => {
    // The router rejects these itself; the answer must still be a contract error, not Fastify's default shape.
    assertError(t, await get('/rooms/%E0%A4', owner.token), 400, 'bad_request', 'invalid percent-encoding')
    assertError(t, await get(`/rooms/${'a'.repeat(250)}`, owner.token), 400, 'bad_request', '250-char room id')
  })

  t.test('public room: anyone joins themselves, only members add others', async (t) => {
    // outsider is not a member of pub, so it may not bring someone else in.
    assertError(t, await addMember(outsider.token, 'pub', target.id), 403, 'forbidden', 'non-member adds another user')
    const joined = await addMember(outsider.token, 'pub', outsider.id)
    t.equal(joined.status, 204, 'self-join')
    t.equal(joined.text, '', '204 has no body')
    t.equal((await addMember(outsider.token, 'pub', outsider.id)).status, 204, 'self-join again is idempotent')
    // Now a member, outsider may add others, and twice is still fine.
    t.equal((await addMember(outsider.token, 'pub', target.id)).status, 204, 'member adds another user')
    t.equal((await addMember(outsider.token, 'pub', target.id)).status, 204, 'adding again is idempotent')
    // target was really added: it may now add someone else itself.
    t.equal((await addMember(target.token, 'pub', member.id)).status, 204, 'the added user is a member')
  })

  t.test('POST /rooms/:id/members errors', async (t) => {
    assertError(t, await addMember(owner.token, 'pub', UNKNOWN_USER), 404, 'not_found', 'unknown user')
    assertError(t, await addMember(owner.token, 'no-such-room', owner.id), 404, 'not_found', 'unknown room')
    assertError(t, await addMember(owner.token, 'no-such-room', target.id), 404, 'not_found', 'unknown room, other user')
    const invalid: Record<string, unknown> = {
      'userId "abc"': { userId: 'abc' },
      'userId as a number': { userId: Number(target.id) },
      'userId "0"': { userId: '0' },
      'userId "-1"': { userId: '-1' },
      'userId "1.5"': { userId: '1.5' },
      'userId " 1"': { userId: ` ${target.id}` },
      'userId null': { userId: null },
      'missing userId': {},
      'extra field': { userId: target.id, role: 'admin' },
      'array body': [{ userId: target.id }]
    }
    for (const [label, json] of Object.entries(invalid)) {
      assertError(t, await api.request('POST', '/rooms/pub/members', { token: owner.token, json }), 400, 'bad_request', label)
    }
    assertError(t, await api.request('POST', '/rooms/a%2Fb/members', { token: owner.token, json: { userId: owner.id } }), 400, 'bad_request', 'invalid room id')
  })

  t.test('private room: members add others, who then see the room', async (t) => {
    t.equal((await addMember(owner.token, 'secret', member.id)).status, 204, 'creator adds member')
    t.equal((await addMember(owner.token, 'secret', member.id)).status, 204, 'adding again is idempotent')
    t.ok((await roomIds(member.token)).includes('secret'), 'the added user sees it in GET /rooms')
    const fetched = await get('/rooms/secret', member.token)
    t.equal(fetched.status, 200)
    isRoom(t, fetched.body, { id: 'secret', title: 'Secret', private: true, createdBy: owner.id, lastSeq: 0 }, 'secret for the new member')
    // Any member, not only the creator, may add others to a private room.
    t.equal((await addMember(member.token, 'secret', target.id)).status, 204, 'a non-creator member adds someone')
    t.equal((await get('/rooms/secret', target.token)).status, 200, 'who can then GET it')
    assertError(t, await addMember(member.token, 'secret', UNKNOWN_USER), 404, 'not_found', 'unknown user')
  })

  t.test('API.md: only a member may add others to a private room (403)', async (t) => {
    // API.md names 403 for this case, and answers 403 for a non-member reading a private room's history too.
    assertError(t, await addMember(outsider.token, 'secret', target.id), 403, 'forbidden', 'non-member adds a member of it')
    assertError(t, await addMember(outsider.token, 'secret', outsider.id), 403, 'forbidden', 'non-member adds itself')
    t.equal((await get('/rooms/secret', outsider.token)).status, 404, 'the refused self-add did not make it a member')
  })

  t.test('DELETE /rooms/:id/members/:userId permissions', async (t) => {
    const fresh = await api.user('leaver')
    t.equal((await create(owner.token, { id: 'club', private: true })).status, 201)
    for (const u of [member, target, fresh]) t.equal((await addMember(owner.token, 'club', u.id)).status, 204, `add ${u.username}`)

    // Only the creator removes others: a plain member cannot, and nothing changes.
    assertError(t, await removeMember(member.token, 'club', target.id), 403, 'forbidden', 'member removes another member')
    assertError(t, await removeMember(member.token, 'club', owner.id), 403, 'forbidden', 'member removes the creator')
    t.equal((await get('/rooms/club', target.token)).status, 200, 'the refused removal left target in')

    const removed = await removeMember(owner.token, 'club', target.id)
    t.equal(removed.status, 204, 'the creator removes a member')
    t.equal(removed.text, '', '204 has no body')
    assertError(t, await get('/rooms/club', target.token), 404, 'not_found', 'the removed user no longer sees the private room')
    t.notOk((await roomIds(target.token)).includes('club'), 'nor lists it')
    t.equal((await removeMember(owner.token, 'club', target.id)).status, 204, 'removing a non-member is idempotent')
    t.equal((await removeMember(owner.token, 'club', outsider.id)).status, 204, 'removing a never-member is a no-op')

    t.equal((await removeMember(member.token, 'club', member.id)).status, 204, 'a member removes itself')
    assertError(t, await get('/rooms/club', member.token), 404, 'not_found', 'and loses sight of the room')

    assertError(t, await removeMember(owner.token, 'club', UNKNOWN_USER), 404, 'not_found', 'unknown user')
    assertError(t, await removeMember(owner.token, 'no-such-room', owner.id), 404, 'not_found', 'unknown room')
    assertError(t, await removeMember(owner.token, 'club', 'abc'), 400, 'bad_request', 'non-numeric userId')
    assertError(t, await removeMember(owner.token, 'club', '0'), 400, 'bad_request', 'userId 0')
    assertError(t, await removeMember(owner.token, 'a%2Fb', owner.id), 400, 'bad_request', 'invalid room id')
    t.equal((await get('/rooms/club', fresh.token)).status, 200, 'uninvolved member kept its membership')
  })

  t.test('DELETE in a public room: yourself always, others only as creator', async (t) => {
    t.equal((await create(owner.token, { id: 'square' })).status, 201)
    t.equal((await addMember(member.token, 'square', member.id)).status, 204)
    t.equal((await addMember(target.token, 'square', target.id)).status, 204)
    assertError(t, await removeMember(member.token, 'square', target.id), 403, 'forbidden', 'member removes another member')
    assertError(t, await removeMember(outsider.token, 'square', owner.id), 403, 'forbidden', 'non-member removes the creator')
    t.equal((await removeMember(outsider.token, 'square', outsider.id)).status, 204, 'a non-member removing itself is a no-op')
    t.equal((await removeMember(member.token, 'square', member.id)).status, 204, 'member leaves')
    // Having left, member is no longer allowed to bring others in.
    assertError(t, await addMember(member.token, 'square', outsider.id), 403, 'forbidden', 'former member adds someone')
    t.equal((await removeMember(owner.token, 'square', target.id)).status, 204, 'creator removes a member')
    assertError(t, await addMember(target.token, 'square', outsider.id), 403, 'forbidden', 'removed member adds someone')
    t.equal((await get('/rooms/square', target.token)).status, 200, 'a public room stays visible after removal')
  })

  t.test('DELETE in a private room by a non-member: yourself always, others 403', async (t) => {
    // The brief's rules: removing yourself always succeeds (idempotent); removing someone else needs the creator.
    t.equal((await create(owner.token, { id: 'vault', private: true })).status, 201)
    t.equal((await addMember(owner.token, 'vault', member.id)).status, 204)
    t.equal((await removeMember(outsider.token, 'vault', outsider.id)).status, 204, 'non-member removes itself')
    assertError(t, await removeMember(outsider.token, 'vault', member.id), 403, 'forbidden', 'non-member removes a member')
    t.equal((await get('/rooms/vault', member.token)).status, 200, 'member kept its membership')
    t.equal((await removeMember(member.token, 'vault', member.id)).status, 204, 'member leaves')
    t.equal((await removeMember(member.token, 'vault', member.id)).status, 204, 'leaving again is idempotent')
  })

  t.test('readSeq and unread are the caller\'s: its own messages are read, others\' unread until it reads them', async (t) => {
    t.equal((await create(owner.token, { id: 'reading' })).status, 201)
    const s = await connect(baseUrl, owner.token)
    t.teardown(() => { s.ws.terminate() })
    t.equal((await s.request({ type: 'join', room: 'reading' })).type, 'joined')
    for (const body of ['one', 'two', 'three']) t.equal((await s.request({ type: 'message', room: 'reading', body })).type, 'ack', `sent ${body}`)
    const expected = { id: 'reading', title: 'reading', private: false, createdBy: owner.id, lastSeq: 3 }
    const listed = async (token: string): Promise<unknown> => (await get('/rooms', token)).body.rooms.find((r: { id: string }) => r.id === 'reading')
    isRoom(t, (await get('/rooms/reading', owner.token)).body, { ...expected, readSeq: 3 }, 'the author')
    isRoom(t, await listed(owner.token), { ...expected, readSeq: 3 }, 'the author, listed')
    isRoom(t, (await get('/rooms/reading', member.token)).body, expected, 'a reader who has read nothing')
    t.strictSame((await api.request('PUT', '/rooms/reading/read', { token: member.token, json: { seq: 2 } })).body, { room: 'reading', readSeq: 2 })
    isRoom(t, (await get('/rooms/reading', member.token)).body, { ...expected, readSeq: 2 }, 'the reader after reading to 2')
    isRoom(t, await listed(member.token), { ...expected, readSeq: 2 }, 'the reader, listed')
    isRoom(t, (await get('/rooms/reading', outsider.token)).body, expected, 'another user is unaffected')
  })
})
