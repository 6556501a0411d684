import t from 'tap'
import { FakeWebSocket, flush, makeClient } from './fakes.js'

t.beforeEach(() => { FakeWebSocket.sockets = [] })

function deferred<T> (): { promise: Promise<T>, resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => { resolve = r })
  return { promise, resolve }
}

t.test('single flight: three needs for a token while one fetch is pending make one call', async (t) => {
  const listeners: Array<() => void> = []
  const g = globalThis as any
  g.addEventListener = (type: string, fn: () => void) => { if (type === 'online') listeners.push(fn) }
  g.removeEventListener = () => {}
  t.teardown(() => { delete g.addEventListener; delete g.removeEventListener })
  const pending = deferred<string>()
  let calls = 0
  const { client } = makeClient({ token: async () => { calls++; return await pending.promise } })
  await flush()
  // Two `online` events restart connecting while the first token fetch is still pending.
  for (const fn of listeners) fn()
  await flush()
  for (const fn of listeners) fn()
  await flush()
  pending.resolve('t1')
  await flush()
  t.equal(calls, 1, 'one token call for three connection attempts')
  t.equal(FakeWebSocket.sockets.length, 1, 'one socket: the voided attempts made none')
  t.equal(FakeWebSocket.sockets[0]!.protocols[1], 'bearer.t1')
  client.close()
})

t.test('refresh at ~80 % of the lifetime with `auth`, then again from `authed`', async (t) => {
  let calls = 0
  const { client, clock, last } = makeClient({ token: async () => `t${++calls}` })
  await flush()
  const ws = last()
  ws.accept({ expiresAt: new Date(clock.now() + 100_000).toISOString() })
  await clock.advance(79_999)
  t.equal(ws.frames('auth').length, 0, 'nothing before 80 %')
  await clock.advance(1)
  t.equal(calls, 2, 'the token function is called at 80 %')
  const auth = ws.frames('auth')[0]!
  t.equal(auth.token, 't2', 'and its token sent with auth')
  ws.deliver({ type: 'authed', expiresAt: new Date(clock.now() + 50_000).toISOString(), ref: auth.ref })
  await clock.advance(40_000)
  t.equal(ws.frames('auth').length, 2, 'the next refresh at 80 % of the new lifetime')
  t.equal(ws.closedWith, null, 'the socket stays open')
  t.equal(FakeWebSocket.sockets.length, 1)
  client.close()
})

t.test('a string token is never refreshed', async (t) => {
  const { client, clock, last } = makeClient({ token: 'fixed' })
  await flush()
  last().accept({ expiresAt: new Date(clock.now() + 100_000).toISOString() })
  await clock.advance(99_000)
  t.equal(last().frames('auth').length, 0)
  client.close()
})

t.test('1006 before open: /auth/me says 401, so the token function is asked for a new token', async (t) => {
  let calls = 0
  const asked: Array<[string, string | undefined]> = []
  const { client, clock, last } = makeClient({
    token: () => `t${++calls}`,
    fetch: async (url, init) => {
      asked.push([url, init.headers.Authorization])
      return { status: init.headers.Authorization === 'Bearer t1' ? 401 : 200 }
    }
  })
  await flush()
  last().serverClose(1006)
  await flush()
  t.same(asked, [['http://chat.test/auth/me', 'Bearer t1']], 'asks /auth/me on the socket\'s origin with the token')
  await clock.advance(1000)
  t.equal(calls, 2, 'a new token after the 401')
  t.equal(last().protocols[1], 'bearer.t2')
  last().serverClose(1006)
  await clock.advance(2000)
  t.equal(calls, 2, 'a 200 from /auth/me: the token is fine, just back off and retry with it')
  t.equal(FakeWebSocket.sockets.length, 3)
  t.equal(last().protocols[1], 'bearer.t2')
  client.close()
})

t.test('a refused string token ends in `closed` with an unauthorized error; pending calls reject', async (t) => {
  const { client, clock, last } = makeClient({ token: 'stale', fetch: async () => ({ status: 401 }) })
  const errors: string[] = []
  const states: string[] = []
  client.on('error', (e) => errors.push(e.code))
  client.on('state', (s) => states.push(s))
  const room = client.room('r')
  const join = room.join()
  const send = room.send('x')
  await flush()
  last().serverClose(1006)
  await t.rejects(join, { code: 'unauthorized' })
  await t.rejects(send, { code: 'unauthorized' })
  t.same(errors, ['unauthorized'])
  t.same(states, ['connecting', 'closed'])
  t.equal(clock.pending, 0, 'no retry left behind')
})

t.test('a network error on /auth/me just backs off', async (t) => {
  const { client, clock, last } = makeClient({ token: 'tok', fetch: async () => { throw new Error('offline') } })
  await flush()
  last().serverClose(1006)
  await clock.advance(1000)
  t.equal(FakeWebSocket.sockets.length, 2)
  t.equal(client.state, 'connecting')
  client.close()
})
