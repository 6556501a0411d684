// Finding people (API.md v1.1): `GET /users?username=` and `GET /rooms/:id/members`.
//
// What is fixed: `/users` matches the username exactly, in any case, and answers
// `{users: [{id, username}]}` with zero or one user; `username` is required. `/rooms/:id/members`
// pages `{room, members: [{userId, username, joinedAt}], hasMore}` by user id as a number
// (`limit` 1-500, default 100; `after` a user id); unknown room 404; a private room only for its
// members (403); a public room's members for anyone authenticated.
import t from 'tap'
import { assertError } from '../helpers/assertions.js'
import { createRoom, uniqueRoomId, type Account } from '../helpers/chat.js'
import type { ApiResponse } from '../helpers/http.js'
import { eachBackend, startTestServer } from '../helpers/server.js'

interface Member { userId: string, username: string, joinedAt: string }

function isIsoDate (value: unknown): boolean {
  return typeof value === 'string' && !Number.isNaN(Date.parse(value)) && new Date(value).toISOString() === value
}

eachBackend(t, async (t, backend) => {
  const { api } = await startTestServer(t, backend)
  const get = async (path: string, user: Account): Promise<ApiResponse> => await api.request('GET', path, { token: user.token })

  // Users 1..11 of a fresh database, so a room holds ids 9 and 10 (9 < 10 as numbers, '10' < '9' as text).
  const users: Account[] = []
  for (let i = 0; i < 11; i++) users.push(await api.user('person'))
  const [owner, outsider] = [users[0]!, users[10]!]

  t.test('GET /users?username= finds one user by exact name in any case', async (t) => {
    const someone = users[3]!
    const exact = await get(`/users?username=${someone.username}`, owner)
    t.equal(exact.status, 200)
    t.strictSame(exact.body, { users: [{ id: someone.id, username: someone.username }] }, 'exact name')
    t.strictSame((await get(`/users?username=${someone.username.toUpperCase()}`, owner)).body, exact.body, 'upper case')
    const mixed = someone.username.split('').map((c, i) => i % 2 === 0 ? c.toUpperCase() : c).join('')
    t.strictSame((await get(`/users?username=${mixed}`, outsider)).body, exact.body, 'mixed case, asked by another user')
    t.strictSame((await get(`/users?username=${someone.username.slice(0, -1)}`, owner)).body, { users: [] }, 'a prefix is no match')
    t.strictSame((await get(`/users?username=${someone.username}x`, owner)).body, { users: [] }, 'a longer name is no match')
    t.strictSame((await get('/users?username=nobody_here', owner)).body, { users: [] }, 'unknown: an empty list')
    t.strictSame((await get('/users?username=no%20such%20name', owner)).body, { users: [] }, 'a name no one can register: an empty list')
    t.strictSame((await get('/users?username=%25', owner)).body, { users: [] }, 'a wildcard character matches nothing')
    assertError(t, await get('/users', owner), 400, 'bad_request', 'username missing')
    assertError(t, await get('/users?username=', owner), 400, 'bad_request', 'username empty')
    assertError(t, await api.request('GET', `/users?username=${someone.username}`), 401, 'unauthorized', 'no token')
  })

  t.test('GET /rooms/:id/members pages by user id as a number', async (t) => {
    const room = uniqueRoomId('people', 'members')
    await createRoom(api, owner, room)
    // Everyone but the outsider joins, in an order unlike their ids.
    for (const u of [...users.slice(1, 10)].reverse()) {
      const res = await api.request('POST', `/rooms/${room}/members`, { token: u.token, json: { userId: u.id } })
      t.equal(res.status, 204, `${u.username} joins`)
    }
    const members = users.slice(0, 10)
    const ids = members.map((u) => u.id)
    t.ok(ids.includes('9') && ids.includes('10'), `ids 9 and 10 are members (${ids.join(',')})`)
    const numeric = [...ids].sort((a, b) => Number(a) - Number(b))

    const all = await get(`/rooms/${room}/members`, owner)
    t.equal(all.status, 200)
    t.strictSame(Object.keys(all.body).sort(), ['hasMore', 'members', 'room'])
    t.equal(all.body.room, room)
    t.equal(all.body.hasMore, false)
    t.strictSame(all.body.members.map((m: Member) => m.userId), numeric, 'every member, by id as a number')
    for (const m of all.body.members as Member[]) {
      t.strictSame(Object.keys(m).sort(), ['joinedAt', 'userId', 'username'], `${m.userId}: exactly the member fields`)
      t.equal(m.username, members.find((u) => u.id === m.userId)?.username, `${m.userId}: username`)
      t.ok(isIsoDate(m.joinedAt), `${m.userId}: joinedAt is ISO-8601`)
    }

    const pages: string[][] = []
    let after: string | undefined
    for (;;) {
      const res = await get(`/rooms/${room}/members?limit=3${after === undefined ? '' : `&after=${after}`}`, owner)
      t.equal(res.status, 200)
      const page = (res.body.members as Member[]).map((m) => m.userId)
      pages.push(page)
      t.equal(res.body.hasMore, pages.flat().length < ids.length, `page ${pages.length}: hasMore`)
      if (!res.body.hasMore) break
      after = page[page.length - 1]
    }
    t.strictSame(pages, [numeric.slice(0, 3), numeric.slice(3, 6), numeric.slice(6, 9), numeric.slice(9)], 'pages of 3 by id as a number')
    const afterNine = await get(`/rooms/${room}/members?after=9`, owner)
    t.strictSame(afterNine.body.members.map((m: Member) => m.userId), numeric.filter((id) => Number(id) > 9), 'after=9 starts at 10')
    const exactPage = await get(`/rooms/${room}/members?limit=${ids.length}`, owner)
    t.equal(exactPage.body.hasMore, false, 'a page that ends with the last member: hasMore false')
    t.equal((await get(`/rooms/${room}/members?limit=500`, owner)).status, 200, 'limit 500')
    t.strictSame((await get(`/rooms/${room}/members?after=999999`, owner)).body, { room, members: [], hasMore: false }, 'after the last: empty')

    const badQueries: Array<[string, string]> = [
      ['limit=0', 'limit 0'], ['limit=501', 'limit 501'], ['limit=x', 'limit not a number'],
      ['after=0', 'after 0'], ['after=abc', 'after not an id'], ['after=-1', 'after negative']
    ]
    for (const [query, what] of badQueries) {
      assertError(t, await get(`/rooms/${room}/members?${query}`, owner), 400, 'bad_request', what)
    }
  })

  t.test('the default page is 100 members', async (t) => {
    const room = uniqueRoomId('people', 'crowd')
    await createRoom(api, owner, room)
    const crowd: Account[] = []
    for (let i = 0; i < 100; i++) crowd.push(await api.user('crowd'))
    for (const u of crowd) await api.request('POST', `/rooms/${room}/members`, { token: u.token, json: { userId: u.id } })
    const page = await get(`/rooms/${room}/members`, owner)
    t.equal(page.body.members.length, 100, '100 of 101')
    t.equal(page.body.hasMore, true)
    const rest = await get(`/rooms/${room}/members?after=${page.body.members[99].userId as string}`, owner)
    t.strictSame(rest.body.members.map((m: Member) => m.userId), [crowd[99]!.id], 'the newest user is last')
    t.equal(rest.body.hasMore, false)
  })

  t.test('who may list: members of a private room; anyone for a public one', async (t) => {
    const [member, stranger] = [users[1]!, users[2]!]
    const closed = uniqueRoomId('people', 'private')
    await createRoom(api, owner, closed, true)
    t.equal((await api.request('POST', `/rooms/${closed}/members`, { token: owner.token, json: { userId: member.id } })).status, 204)
    const listed = await get(`/rooms/${closed}/members`, member)
    t.equal(listed.status, 200, 'a member lists a private room')
    t.strictSame(listed.body.members.map((m: Member) => m.userId), [owner.id, member.id].sort((a, b) => Number(a) - Number(b)))
    assertError(t, await get(`/rooms/${closed}/members`, stranger), 403, 'forbidden', 'private, not a member')

    const open = uniqueRoomId('people', 'public')
    await createRoom(api, owner, open)
    const seen = await get(`/rooms/${open}/members`, stranger)
    t.equal(seen.status, 200, 'a non-member lists a public room')
    t.strictSame(seen.body.members.map((m: Member) => m.userId), [owner.id])
    assertError(t, await get('/rooms/no-such-room/members', stranger), 404, 'not_found', 'unknown room')
    assertError(t, await api.request('GET', `/rooms/${open}/members`), 401, 'unauthorized', 'no token')
  })
})
