import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import { ChatClient } from '../../../client/src/index.js'
import { FakeClock, FakeWebSocket, flush, makeClient, message } from './fakes.js'

t.beforeEach(() => { FakeWebSocket.sockets = [] })

async function joined (options: Parameters<typeof makeClient>[0] = {}): Promise<ReturnType<typeof makeClient>> {
  const made = makeClient(options)
  const join = made.client.room('r').join()
  await flush()
  made.last().accept()
  made.last().answerJoin('r', 0)
  await join
  return made
}

t.test('typing: sent at once, refreshed at most every 3 s, stopped after 5 s idle or by typing(false)', async (t) => {
  const { client, clock, last } = await joined()
  const room = client.room('r')
  const typing = (): boolean[] => last().frames('typing').map((f) => f.typing as boolean)
  room.typing(true)
  t.same(typing(), [true], 'the first keystroke sends typing true')
  await clock.advance(1000)
  room.typing(true)
  await clock.advance(1000)
  room.typing(true)
  t.same(typing(), [true], 'no refresh within 3 s')
  await clock.advance(1000)
  room.typing(true)
  t.same(typing(), [true, true], 'refreshed after 3 s of typing')
  await clock.advance(4999)
  t.same(typing(), [true, true], 'still typing 5 s after the last keystroke minus 1 ms')
  await clock.advance(1)
  t.same(typing(), [true, true, false], 'stopped after 5 s without a keystroke')
  room.typing(false)
  t.same(typing(), [true, true, false], 'typing(false) when not typing sends nothing')
  room.typing(true)
  room.typing(false)
  t.same(typing(), [true, true, false, true, false], 'typing(false) stops at once')
  room.typing(true)
  room.send('hi').catch(() => {})
  await clock.advance(10_000)
  t.same(typing(), [true, true, false, true, false, true], 'a message ends typing on the server: no typing false after it')
  client.close()
})

t.test('generation-scoped: a late frame, close or timer of an old connection changes nothing', async (t) => {
  // A clock whose clearTimeout does nothing: every timer of the old connection still fires.
  const clock = new FakeClock()
  clock.clearTimeout = () => {}
  let calls = 0
  const { client, last } = makeClient({ clock, token: () => `t${++calls}` })
  const room = client.room('r')
  const seen: number[] = []
  room.on('message', (m) => seen.push(m.seq))
  void room.join()
  await flush()
  const old = last()
  old.accept({ expiresAt: new Date(clock.now() + 100_000).toISOString() })
  old.answerJoin('r', 5)
  const oldMessage = old.onmessage!
  const oldClose = old.onclose!
  await clock.advance(10_000)
  old.serverClose(1006)
  await clock.advance(1000)
  const current = last()
  t.not(current, old)
  current.accept({ expiresAt: new Date(clock.now() + 100_000).toISOString() })
  current.answerJoin('r', 5)
  oldMessage({ data: JSON.stringify(message('r', 6)) })
  t.same(seen, [], 'a late message of the old socket is not delivered')
  oldClose({ code: 1006 })
  t.equal(current.closedWith, null, 'a late close of the old socket does not touch the new one')
  t.equal(client.state, 'open')
  await clock.advance(74_000)
  t.equal(calls, 2, 'the reconnect took a fresh token; the old connection\'s refresh timer (due at 80 s) did nothing')
  t.equal(current.frames('auth').length, 0)
  await clock.advance(6000)
  t.equal(calls, 3, 'the current connection refreshes at its own 80 %')
  t.equal(current.frames('auth').length, 1)
  t.equal(FakeWebSocket.sockets.length, 2)
  client.close()
})

t.test('a late /auth/me answer after close() changes nothing', async (t) => {
  let answer!: (r: { status: number }) => void
  const { client, clock, last } = makeClient({ token: 'tok', fetch: async () => await new Promise((resolve) => { answer = resolve }) })
  await flush()
  last().serverClose(1006)
  await flush()
  client.close()
  answer({ status: 401 })
  await clock.advance(60_000)
  t.equal(FakeWebSocket.sockets.length, 1)
  t.equal(clock.pending, 0)
  t.equal(client.state, 'closed')
})

t.test('close(): state closed, socket closed, pending calls rejected with `closed`, no timer left', async (t) => {
  const { client, clock, last } = await joined({ token: async () => 'tok' })
  const room = client.room('r')
  const states: string[] = []
  client.on('state', (s) => states.push(s))
  const send = room.send('x')
  const read = room.read(1)
  const other = client.room('other').join()
  room.typing(true)
  t.ok(clock.pending > 0, 'timers were running')
  const ws = last()
  client.close()
  await t.rejects(send, { code: 'closed' })
  await t.rejects(read, { code: 'closed' })
  await t.rejects(other, { code: 'closed' })
  t.same(states, ['closed'])
  t.equal(ws.closedWith, 1000)
  t.equal(clock.pending, 0, 'no timer left')
  t.equal(ws.onmessage, null, 'the socket\'s handlers are removed')
  await t.rejects(client.room('r').join(), { code: 'closed' })
  client.close()
  t.same(states, ['closed'], 'close() twice is harmless')
})

t.test('1,000 clients created and closed leave nothing behind', async (t) => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const clock = new FakeClock()
  const refs: Array<WeakRef<object>> = []
  const cycle = async (n: number, keep: boolean): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const client = new ChatClient({ url: 'ws://chat.test/ws', token: async () => 'tok', WebSocket: FakeWebSocket, clock, fetch: async () => ({ status: 200 }) })
      client.on('state', () => {})
      const room = client.room('r')
      room.on('message', () => {})
      void room.join().catch(() => {})
      await flush()
      const ws = FakeWebSocket.sockets.at(-1)!
      ws.accept()
      ws.answerJoin('r', 3, [], [{ userId: '1', username: 'alice' }])
      room.send('pending').catch(() => {})
      room.typing(true)
      client.close()
      if (keep) refs.push(new WeakRef(client), new WeakRef(room))
    }
  }
  await cycle(100, false)
  gc()
  const before = process.memoryUsage().heapUsed
  await cycle(1000, true)
  await flush()
  gc()
  await new Promise((resolve) => setTimeout(resolve, 10))
  gc()
  const alive = refs.filter((r) => r.deref() !== undefined).length
  const growth = process.memoryUsage().heapUsed - before
  t.equal(clock.pending, 0, 'no timer of any client left on the clock')
  t.equal(alive, 0, 'every closed client and room was collected (the old sockets, still referenced, hold none)')
  t.ok(growth < 4 * 1024 * 1024, `heap flat: grew ${Math.round(growth / 1024)} KiB over 1,000 clients`)
  t.equal(FakeWebSocket.sockets.length, 1100, 'the sockets themselves are still referenced by the test')
})
