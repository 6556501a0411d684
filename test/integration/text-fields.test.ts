import t from 'tap'
import { assertError } from '../helpers/assertions.js'
import { connectUntilTeardown } from '../helpers/chat.js'
import { eachBackend, startTestServer } from '../helpers/server.js'

/** API.md: text fields refuse NUL and lone surrogates with 400 bad_request (REST) and bad_request (socket). */
const BAD_TEXT = [
  { name: 'a NUL', value: 'a\u0000b' },
  // JSON.stringify writes half a pair as the escape \ud800, as a client can.
  { name: 'a lone high surrogate', value: 'a\uD800b' },
  { name: 'a lone low surrogate', value: 'b\uDC00' }
] as const

eachBackend(t, async (t, backend) => {
  const { api, baseUrl } = await startTestServer(t, backend)
  const alice = await api.user('alice')
  const password = 'correct-horse-battery'

  t.test('every JSON text field of every route', async (t) => {
    const routes: Array<{ method: string, path: string, body: (bad: string) => unknown, token?: string }> = [
      { method: 'POST', path: '/auth/register', body: (bad) => ({ username: `user_${bad}x`, password }) },
      { method: 'POST', path: '/auth/register', body: (bad) => ({ username: 'fine_name', password: `${password}${bad}` }) },
      { method: 'POST', path: '/auth/login', body: (bad) => ({ username: `${alice.username}${bad}`, password }) },
      { method: 'POST', path: '/auth/login', body: (bad) => ({ username: alice.username, password: `${password}${bad}` }) },
      { method: 'POST', path: '/auth/refresh', body: (bad) => ({ refreshToken: `token${bad}` }) },
      { method: 'POST', path: '/auth/logout', body: (bad) => ({ refreshToken: `token${bad}` }) },
      { method: 'POST', path: '/rooms', body: (bad) => ({ id: `r-${bad}`, title: 'fine' }), token: alice.token },
      { method: 'POST', path: '/rooms', body: (bad) => ({ id: 'text-title', title: `title ${bad}` }), token: alice.token },
      { method: 'POST', path: '/rooms/general/messages', body: (bad) => ({ body: `hello ${bad}` }), token: alice.token },
      { method: 'POST', path: '/rooms/general/messages', body: (bad) => ({ body: 'hello', clientMsgId: `c${bad}` }), token: alice.token },
      { method: 'POST', path: '/rooms/general/members', body: (bad) => ({ userId: `${alice.id}${bad}` }), token: alice.token }
    ]
    for (const route of routes) {
      // The same request with clean text reaches the route: the 400s below are the route's, not a 404's.
      const clean = await api.request(route.method, route.path, { json: route.body(''), token: route.token })
      t.not(clean.status, 404, `${route.method} ${route.path} exists`)
      t.not(clean.body?.error, 'bad_request', `${route.method} ${route.path} takes clean text`)
      for (const { name, value } of BAD_TEXT) {
        const label = `${route.method} ${route.path} ${JSON.stringify(route.body('…'))} with ${name}`
        const res = await api.request(route.method, route.path, { json: route.body(value), token: route.token })
        assertError(t, res, 400, 'bad_request', label)
      }
    }
    const rooms = await api.request('GET', '/rooms', { token: alice.token })
    t.equal(rooms.body.rooms.find((room: { id: string }) => room.id === 'text-title')?.title, 'title ', 'only the clean title was stored')
    const history = await api.request('GET', '/rooms/general/messages', { token: alice.token })
    t.same(history.body.messages.map((m: { body: string }) => m.body), ['hello ', 'hello'], 'only the clean messages were stored')
  })

  t.test('text in the path and the query string', async (t) => {
    for (const path of ['/rooms/a%00b', '/rooms/a%00b/messages', '/users?username=al%00ice', '/rooms/general/messages?limit=1%00']) {
      assertError(t, await api.request('GET', path, { token: alice.token }), 400, 'bad_request', `GET ${path}`)
    }
  })

  t.test('what is stored comes back unchanged', async (t) => {
    const title = 'tabs\tnew\nline back\\slash "quotes" é ✓ \u{1F600} \u200B \uFEFF'
    const created = await api.request('POST', '/rooms', { json: { id: 'unchanged', title }, token: alice.token })
    t.equal(created.status, 201)
    t.equal(created.body.title, title, 'in the 201')
    t.equal((await api.request('GET', '/rooms/unchanged', { token: alice.token })).body.title, title, 'read back')
  })

  t.test('the socket refuses the same text in every field with bad_request', async (t) => {
    const socket = await connectUntilTeardown(t, baseUrl, alice.token)
    await socket.request({ type: 'join', room: 'general' })
    for (const { name, value } of BAD_TEXT) {
      for (const frame of [
        { type: 'message', room: 'general', body: `x${value}` },
        { type: 'message', room: 'general', body: 'x', clientMsgId: value },
        { type: 'auth', token: `a.b${value}.c` }
      ]) {
        const reply = await socket.request(frame)
        t.match(reply, { type: 'error', code: 'bad_request' }, `${JSON.stringify(frame)} with ${name}`)
      }
    }
    const pong = await socket.request({ type: 'ping' })
    t.equal(pong.type, 'pong', 'the socket stays open')
    const history = await api.request('GET', '/rooms/general/messages', { token: alice.token })
    t.equal(history.body.messages.length, 2, 'nothing more was stored')
  })
})
