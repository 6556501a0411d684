import t from 'tap'
import { backoffDelay } from '../../../client/src/index.js'
import { FakeWebSocket, flush, makeClient } from './fakes.js'

t.beforeEach(() => { FakeWebSocket.sockets = [] })

t.test('backoff: full jitter within [0, min(max, min * 2^attempt)], spread over the whole window', async (t) => {
  for (let attempt = 0; attempt < 12; attempt++) {
    const cap = Math.min(20_000, 500 * 2 ** attempt)
    const samples = Array.from({ length: 2000 }, () => backoffDelay(attempt, 500, 20_000, Math.random))
    t.ok(samples.every((d) => d >= 0 && d <= cap && Number.isInteger(d)), `attempt ${attempt}: every delay within [0, ${cap}]`)
    t.ok(Math.min(...samples) < cap * 0.05 && Math.max(...samples) > cap * 0.95, `attempt ${attempt}: jitter spans the window`)
  }
  t.equal(backoffDelay(100, 500, 20_000, () => 0.9999), 19_998, 'huge attempts stay capped at max')
  t.equal(backoffDelay(0, 500, 20_000, () => 0), 0, 'the lower bound is 0')
})

/** Time from the socket's close to the next socket, with random() pinned near 1 so the delay is the cap. */
async function reconnectDelay (clock: { advance: (ms: number) => Promise<void>, delays: () => number[] }, close: () => void): Promise<number> {
  const before = FakeWebSocket.sockets.length
  close()
  await flush()
  let waited = 0
  while (FakeWebSocket.sockets.length === before) {
    await clock.advance(100)
    waited += 100
    if (waited > 60_000) throw new Error('no reconnect within 60 s')
  }
  return waited
}

t.test('reconnect delays double from 0.5 s to 20 s and start over after 10 s stably open', async (t) => {
  const { client, clock, last } = makeClient()
  clock.rand = () => 0.999
  await flush()
  const waits: number[] = []
  for (let i = 0; i < 8; i++) {
    last().accept()
    waits.push(await reconnectDelay(clock, () => { last().serverClose(1006) }))
  }
  t.same(waits, [500, 1000, 2000, 4000, 8000, 16_000, 20_000, 20_000], 'caps (rounded up to the 100 ms step) double, then stay at 20 s')
  last().accept()
  await clock.advance(10_000)
  t.equal(await reconnectDelay(clock, () => { last().serverClose(1001) }), 500, 'after 10 s open the backoff starts over')
  client.close()
})

t.test('1001, 1013 and 1008 reconnect, each with a fresh token (API.md: called again on every reconnect); attempts that fail before opening reuse it', async (t) => {
  let calls = 0
  const { client, clock, last } = makeClient({ token: () => `t${++calls}` })
  await flush()
  t.equal(last().protocols[1], 'bearer.t1', 'subprotocols carry the token')
  t.equal(last().protocols[0], 'chat.v1')
  last().accept()
  last().serverClose(1001)
  await clock.advance(1000)
  t.equal(calls, 2, 'a reconnect after 1001 calls the token function again')
  t.equal(last().protocols[1], 'bearer.t2')
  last().serverClose(1006)
  await clock.advance(2000)
  t.equal(calls, 2, 'an attempt that failed before opening (and /auth/me says the token is fine) reuses it')
  t.equal(last().protocols[1], 'bearer.t2')
  last().accept()
  last().serverClose(1013)
  await clock.advance(4000)
  t.equal(calls, 3, 'after 1013 too')
  last().accept()
  last().serverClose(1008)
  await clock.advance(8000)
  t.equal(calls, 4, '1008 fetches a new token')
  t.equal(last().protocols[1], 'bearer.t4', 'and connects with it')
  t.equal(FakeWebSocket.sockets.length, 5)
  client.close()
})

t.test('a dead connection is noticed within heartbeat + 10 s; idle sockets send ping', async (t) => {
  const { client, clock, last } = makeClient()
  await flush()
  const ws = last()
  ws.autoPong = false
  ws.accept({ heartbeat: 20 })
  await clock.advance(9_999)
  t.equal(ws.frames('ping').length, 0, 'no ping before heartbeat/2 of silence')
  await clock.advance(1)
  t.equal(ws.frames('ping').length, 1, 'ping after heartbeat/2 without sending')
  ws.deliver({ type: 'pong' })
  await clock.advance(10_000)
  t.equal(ws.frames('ping').length, 2)
  // The server answers nothing from here: 30 s (heartbeat + 10) after the last pong the socket is given up.
  await clock.advance(19_999)
  t.equal(ws.closedWith, null, 'still trusted just before heartbeat + 10 s')
  await clock.advance(1)
  t.not(ws.closedWith, null, 'closed at heartbeat + 10 s without a frame')
  const states: string[] = []
  client.on('state', (s) => states.push(s))
  await clock.advance(1000)
  t.equal(FakeWebSocket.sockets.length, 2, 'and reconnected')
  client.close()
  t.same(states, ['closed'])
})

t.test('no welcome within the connect timeout: the attempt is dropped and retried', async (t) => {
  const { client, clock, last } = makeClient({ connectTimeout: 5000 })
  await flush()
  last().readyState = 1
  last().onopen?.({})
  await clock.advance(5000)
  t.not(FakeWebSocket.sockets[0]!.closedWith, null)
  await clock.advance(1000)
  t.equal(FakeWebSocket.sockets.length, 2)
  client.close()
})

t.test('browser online/offline: offline closes and waits, online reconnects at once; close() removes the listeners', async (t) => {
  const listeners = new Map<string, Set<() => void>>()
  const g = globalThis as any
  g.addEventListener = (type: string, fn: () => void) => { (listeners.get(type) ?? listeners.set(type, new Set()).get(type)!).add(fn) }
  g.removeEventListener = (type: string, fn: () => void) => { listeners.get(type)?.delete(fn) }
  t.teardown(() => { delete g.addEventListener; delete g.removeEventListener })
  const fire = (type: string): void => { for (const fn of [...(listeners.get(type) ?? [])]) fn() }
  const { client, clock, last } = makeClient()
  await flush()
  last().accept()
  t.equal(client.state, 'open')
  fire('offline')
  t.not(last().closedWith, null, 'offline closes the socket')
  t.equal(client.state, 'connecting')
  await clock.advance(120_000)
  t.equal(FakeWebSocket.sockets.length, 1, 'and waits while offline')
  t.equal(clock.pending, 0, 'without timers')
  fire('online')
  await flush()
  t.equal(FakeWebSocket.sockets.length, 2, 'online reconnects at once')
  client.close()
  t.equal(listeners.get('online')?.size, 0, 'close() removed the online listener')
  t.equal(listeners.get('offline')?.size, 0, 'and the offline one')
})
