// The REST side of presence: auth, validation, private rooms, last_seen_at as stored. What live
// sockets do to it (joins, closes, heartbeats) is in presence-live.test.ts.
import t from 'tap'
import { assertError } from '../helpers/assertions.js'
import type { ApiResponse } from '../helpers/http.js'
import { eachBackend, startTestServer } from '../helpers/server.js'

eachBackend(t, async (t, backend) => {
  const { api, server } = await startTestServer(t, backend)
  const db = server.app.db
  const alice = await api.user('alice')
  const bob = await api.user('bob')
  const outsider = await api.user('outsider')

  const get = async (path: string, token: string): Promise<ApiResponse> => await api.request('GET', path, { token })

  t.test('presence routes need a valid bearer token', async (t) => {
    for (const path of ['/rooms/general/presence', `/users/${alice.id}/presence`]) {
      assertError(t, await api.request('GET', path), 401, 'unauthorized', `${path} without a token`)
      assertError(t, await api.request('GET', path, { headers: { authorization: 'Bearer x.y.z' } }), 401, 'unauthorized', `${path} with a garbage token`)
      assertError(t, await api.request('GET', path, { headers: { authorization: alice.token } }), 401, 'unauthorized', `${path} without the Bearer scheme`)
    }
    // Authentication comes before validation: without a token, a malformed id is still 401.
    assertError(t, await api.request('GET', '/users/abc/presence'), 401, 'unauthorized', 'invalid user id, no token')
    assertError(t, await api.request('GET', '/rooms/a%2Fb/presence'), 401, 'unauthorized', 'invalid room id, no token')
  })

  t.test('GET /rooms/:id/presence: nobody listed while no socket has joined the room', async (t) => {
    const res = await get('/rooms/general/presence', outsider.token)
    t.equal(res.status, 200)
    t.strictSame(res.body, { room: 'general', online: [] })
  })

  t.test('GET /rooms/:id/presence in a private room: members only', async (t) => {
    const created = await api.request('POST', '/rooms', { token: alice.token, json: { id: 'hideout', private: true } })
    t.equal(created.status, 201)
    const own = await get('/rooms/hideout/presence', alice.token)
    t.equal(own.status, 200)
    t.strictSame(own.body, { room: 'hideout', online: [] }, 'the creator')
    assertError(t, await get('/rooms/hideout/presence', outsider.token), 403, 'forbidden', 'a non-member')

    t.equal((await api.request('POST', '/rooms/hideout/members', { token: alice.token, json: { userId: bob.id } })).status, 204)
    const added = await get('/rooms/hideout/presence', bob.token)
    t.equal(added.status, 200)
    t.strictSame(added.body, { room: 'hideout', online: [] }, 'an added member')
    t.equal((await api.request('DELETE', `/rooms/hideout/members/${bob.id}`, { token: bob.token })).status, 204)
    assertError(t, await get('/rooms/hideout/presence', bob.token), 403, 'forbidden', 'after leaving')
  })

  t.test('GET /rooms/:id/presence errors', async (t) => {
    assertError(t, await get('/rooms/no-such-room/presence', alice.token), 404, 'not_found', 'unknown room')
    for (const id of ['a%2Fb', '%2B', '%23', 'caf%C3%A9', 'a'.repeat(65)]) {
      assertError(t, await get(`/rooms/${id}/presence`, alice.token), 400, 'bad_request', `room id ${id.slice(0, 20)}`)
    }
  })

  t.test('GET /users/:id/presence: a user who never connected is offline, lastSeenAt null', async (t) => {
    const self = await get(`/users/${alice.id}/presence`, alice.token)
    t.equal(self.status, 200)
    t.strictSame(self.body, { userId: alice.id, status: 'offline', lastSeenAt: null }, 'own presence')
    const other = await get(`/users/${bob.id}/presence`, outsider.token)
    t.equal(other.status, 200)
    t.strictSame(other.body, { userId: bob.id, status: 'offline', lastSeenAt: null }, 'another user, sharing no room')
  })

  t.test('GET /users/:id/presence: an offline user\'s lastSeenAt is users.last_seen_at, as ISO-8601', async (t) => {
    const seen = '2026-03-04T05:06:07.089Z'
    await db.updateTable('users').set({ last_seen_at: new Date(seen) }).where('id', '=', bob.id).execute()
    const res = await get(`/users/${bob.id}/presence`, alice.token)
    t.equal(res.status, 200)
    t.strictSame(res.body, { userId: bob.id, status: 'offline', lastSeenAt: seen })
    // Only bob was touched: alice is still never seen.
    t.strictSame((await get(`/users/${alice.id}/presence`, alice.token)).body, { userId: alice.id, status: 'offline', lastSeenAt: null })
  })

  t.test('GET /users/:id/presence errors', async (t) => {
    assertError(t, await get('/users/999999999999/presence', alice.token), 404, 'not_found', 'unknown user')
    assertError(t, await get('/users/999999999999999999/presence', alice.token), 404, 'not_found', 'unknown user, largest accepted id')
    for (const id of ['abc', '0', '-1', '1.5', '1e3', `0${alice.id}`, '%20' + alice.id, '1234567890123456789', alice.username]) {
      assertError(t, await get(`/users/${id}/presence`, alice.token), 400, 'bad_request', `user id ${id}`)
    }
  })
})
