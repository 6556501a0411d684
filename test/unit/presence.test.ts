import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { Socket } from '../../src/fanout/socket-state.js'
import type { Log } from '../../src/logger.js'
import type { User } from '../../src/protocol/resources.js'
import { createMemoryPresence } from '../../src/presence/memory-presence-store.js'
import { createPresence, type Presence } from '../../src/presence/presence.js'
import type { OnlineUser, PresenceChange, PresenceStore, TouchChanges } from '../../src/presence/presence-store.js'

/** Lets every already-resolved promise callback run. */
const settle = async (): Promise<void> => {
  await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setImmediate(resolve))
}

const alice: User = { id: '101', username: 'alice' }
const bob: User = { id: '102', username: 'bob' }

/** Presence only hands sockets on to `broadcast`: a labelled object stands in for one. */
const socket = (label: string): Socket => ({ label }) as unknown as Socket

interface Sent { readonly roomId: string, readonly frame: unknown, readonly except: Socket | null }

interface Logged { readonly level: 'warn' | 'info' | 'error', readonly obj: unknown, readonly msg: unknown }

/** A Log that keeps what was logged (a message alone is kept as `msg`). */
function recordingLog (): { log: Log, logged: Logged[] } {
  const logged: Logged[] = []
  const at = (level: Logged['level']) => (obj: unknown, msg?: unknown) => {
    logged.push(typeof obj === 'string' ? { level, obj: undefined, msg: obj } : { level, obj, msg })
  }
  const log = { warn: at('warn'), error: at('error'), info: at('info') } as unknown as Log
  return { log, logged }
}

type Method = 'join' | 'leave' | 'online' | 'connect' | 'disconnect' | 'isOnline' | 'touch' | 'sweep' | 'close'

/** Wraps a store: records each call by name, and rejects calls of the methods in `failing`. */
function recorded (inner: PresenceStore): { store: PresenceStore, calls: Method[], failing: Set<Method> } {
  const calls: Method[] = []
  const failing = new Set<Method>()
  const call = async <R>(method: Method, fn: () => Promise<R>): Promise<R> => {
    calls.push(method)
    if (failing.has(method)) throw new Error(`store down (${method})`)
    return await fn()
  }
  const store: PresenceStore = {
    leaseMs: inner.leaseMs,
    join: async (roomId, user) => await call('join', async () => await inner.join(roomId, user)),
    leave: async (roomId, userId) => await call('leave', async () => await inner.leave(roomId, userId)),
    online: async (roomId) => await call('online', async () => await inner.online(roomId)),
    connect: async (user) => await call('connect', async () => await inner.connect(user)),
    disconnect: async (userId) => await call('disconnect', async () => await inner.disconnect(userId)),
    isOnline: async (userId) => await call('isOnline', async () => await inner.isOnline(userId)),
    touch: async () => await call('touch', async () => await inner.touch()),
    sweep: async () => await call('sweep', async () => await inner.sweep()),
    close: async () => await call('close', async () => await inner.close())
  }
  return { store, calls, failing }
}

/**
 * A store whose every call waits for the test to answer it; `answer(method, value)` answers the
 * oldest unanswered call of that method, and `waitFor(method)` waits until one is unanswered.
 */
function answeredByHand (leaseMs = 60_000): {
  store: PresenceStore
  calls: () => string[]
  answer: (method: Method, value: unknown) => void
  waitFor: (method: Method, meanwhile?: Partial<Record<Method, unknown>>) => Promise<void>
} {
  const pending: Array<{ readonly method: Method, answer (value: unknown): void }> = []
  const made: string[] = []
  const call = <R>(method: Method) => async (): Promise<R> => await new Promise<R>((resolve) => {
    made.push(method)
    pending.push({ method, answer: (value) => { resolve(value as R) } })
  })
  return {
    store: {
      leaseMs,
      join: call<boolean>('join'),
      leave: call<boolean>('leave'),
      online: call<OnlineUser[]>('online'),
      connect: call<boolean>('connect'),
      disconnect: call<boolean>('disconnect'),
      isOnline: call<boolean>('isOnline'),
      touch: call<TouchChanges>('touch'),
      sweep: call<PresenceChange[]>('sweep'),
      close: call<PresenceChange[]>('close')
    },
    calls: () => made,
    answer (method, value) {
      const i = pending.findIndex((p) => p.method === method)
      if (i < 0) throw new Error(`no ${method} call waits for an answer`)
      pending.splice(i, 1)[0]!.answer(value)
    },
    // `meanwhile`: answers for other calls made while waiting (periodic touches and sweeps).
    async waitFor (method, meanwhile = {}) {
      const deadline = Date.now() + 3000
      while (!pending.some((p) => p.method === method)) {
        if (Date.now() > deadline) throw new Error(`no ${method} call within 3 s`)
        for (const stray of pending.filter((p) => p.method in meanwhile)) {
          pending.splice(pending.indexOf(stray), 1)
          stray.answer(meanwhile[stray.method])
        }
        await sleep(2)
      }
    }
  }
}

/** The presence events `broadcast` got, as `room user username status except`. */
function eventRecorder (): { broadcast: (roomId: string, event: { text: string, userId: string }, except: Socket | null) => void, sent: Sent[], events: () => string[] } {
  const sent: Sent[] = []
  return {
    sent,
    broadcast: (roomId, event, except) => {
      const frame = JSON.parse(event.text)
      if (frame.userId !== event.userId) throw new Error(`a presence event about ${String(frame.userId)} says it is about ${event.userId}`)
      sent.push({ roomId, frame, except })
    },
    events: () => sent.map(({ roomId, frame, except }) => {
      const { type, room, userId, username, status } = frame as Record<string, unknown>
      const label = except === null ? 'null' : (except as unknown as { label: string }).label
      return `${String(type)}:${String(room)}/${roomId} ${String(userId)} ${String(username)} ${String(status)} except ${label}`
    })
  }
}

function setup (t: Test, leaseMs = 60_000): {
  presence: Presence
  /** Another node sharing the store. */
  other: PresenceStore
  calls: Method[]
  failing: Set<Method>
  sent: Sent[]
  seen: string[]
  logged: Logged[]
  /** The presence events sent, as `room user status except`. */
  events: () => string[]
} {
  const shared = createMemoryPresence({ leaseMs })
  const { store, calls, failing } = recorded(shared.forNode('this'))
  const seen: string[] = []
  const { log, logged } = recordingLog()
  const { broadcast, sent, events } = eventRecorder()
  const presence = createPresence({ store, broadcast, seen: (userId) => { seen.push(userId) }, log })
  t.teardown(async () => { await presence.close() })
  return { presence, other: shared.forNode('other'), calls, failing, sent, seen, logged, events }
}

const sorted = (users: readonly OnlineUser[]): OnlineUser[] => [...users].sort((a, b) => a.userId.localeCompare(b.userId))

t.test('the first socket of a user in a room announces them online to the others; the last one to go, offline', async (t) => {
  const { presence, sent, events } = setup(t)
  const ws1 = socket('ws1')
  const ws2 = socket('ws2')
  t.same(await presence.entered('lobby', alice, ws1), [{ userId: '101', username: 'alice' }], 'the joining user is in the list')
  t.same(events(), ['presence:lobby/lobby 101 alice online except ws1'], 'one online event, not to the joining socket')
  t.strictSame(sent[0]?.frame, { type: 'presence', room: 'lobby', userId: '101', username: 'alice', status: 'online' }, 'the exact frame')
  t.same(await presence.entered('lobby', alice, ws2), [{ userId: '101', username: 'alice' }])
  t.equal(sent.length, 1, 'a second socket of the same user is no news')
  presence.exited('lobby', alice)
  await settle()
  t.equal(sent.length, 1, 'one socket left: still online')
  t.same(await presence.online('lobby'), [{ userId: '101', username: 'alice' }])
  presence.exited('lobby', alice)
  await settle()
  t.same(events().slice(1), ['presence:lobby/lobby 101 alice offline except null'], 'the last socket gone: one offline event, to everyone')
  t.strictSame(sent[1]?.frame, { type: 'presence', room: 'lobby', userId: '101', username: 'alice', status: 'offline' })
  t.same(await presence.online('lobby'), [])
})

t.test('entered resolves with everyone online in the room, the user included', async (t) => {
  const { presence, other } = setup(t)
  await other.join('lobby', { userId: bob.id, username: bob.username })
  t.same(sorted(await presence.entered('lobby', alice, socket('ws1'))), [
    { userId: '101', username: 'alice' },
    { userId: '102', username: 'bob' }
  ])
})

t.test('users and rooms are counted separately', async (t) => {
  const { presence, events } = setup(t)
  await presence.entered('lobby', alice, socket('a1'))
  await presence.entered('lobby', bob, socket('b1'))
  await presence.entered('kitchen', alice, socket('a2'))
  t.same(events(), [
    'presence:lobby/lobby 101 alice online except a1',
    'presence:lobby/lobby 102 bob online except b1',
    'presence:kitchen/kitchen 101 alice online except a2'
  ])
  presence.exited('lobby', alice)
  await settle()
  t.same(events().slice(3), ['presence:lobby/lobby 101 alice offline except null'], 'bob and the kitchen are unaffected')
  t.same(await presence.online('kitchen'), [{ userId: '101', username: 'alice' }])
  t.same(await presence.online('lobby'), [{ userId: '102', username: 'bob' }])
})

t.test('events follow the store: a user another node already holds is not announced, nor their leaving while it still does', async (t) => {
  const { presence, other, events } = setup(t)
  await other.join('lobby', { userId: alice.id, username: alice.username })
  await presence.entered('lobby', alice, socket('ws1'))
  presence.exited('lobby', alice)
  await settle()
  t.same(events(), [], 'alice was online there all along')
  t.equal(await other.leave('lobby', alice.id), true, 'the other node announces her leaving itself')
})

t.test('seen is called when a user\'s first socket connects and when their last one goes, and the store told', async (t) => {
  const { presence, seen, calls } = setup(t)
  presence.connected(alice)
  t.same(seen, ['101'])
  presence.connected(alice)
  presence.connected(alice)
  presence.connected(bob)
  t.same(seen, ['101', '102'], 'not for alice\'s later sockets')
  t.equal(await presence.isOnline('101'), true)
  presence.disconnected(alice)
  presence.disconnected(alice)
  t.same(seen, ['101', '102'], 'not while she has a socket left')
  t.equal(await presence.isOnline('101'), true)
  presence.disconnected(alice)
  t.same(seen, ['101', '102', '101'], 'her last socket went')
  t.equal(await presence.isOnline('101'), false)
  t.equal(await presence.isOnline('102'), true)
  t.same(calls.filter((m) => m === 'connect' || m === 'disconnect'), ['connect', 'connect', 'disconnect'], 'one report per transition')
  presence.connected(alice)
  t.same(seen, ['101', '102', '101', '101'], 'coming back is a first socket again')
})

t.test('a quick exit then enter announces offline then online, in that order', async (t) => {
  const { presence, events } = setup(t)
  await presence.entered('lobby', alice, socket('ws1'))
  presence.exited('lobby', alice)
  const list = await presence.entered('lobby', alice, socket('ws2'))
  await settle()
  t.same(events(), [
    'presence:lobby/lobby 101 alice online except ws1',
    'presence:lobby/lobby 101 alice offline except null',
    'presence:lobby/lobby 101 alice online except ws2'
  ], 'the room ends up seeing her online, as she is')
  t.same(list, [{ userId: '101', username: 'alice' }])
})

t.test('a quick enter then exit announces online then offline, and the list does not show her', async (t) => {
  const { presence, events } = setup(t)
  const entering = presence.entered('lobby', alice, socket('ws1'))
  presence.exited('lobby', alice)
  const list = await entering
  await settle()
  t.same(events(), [
    'presence:lobby/lobby 101 alice online except ws1',
    'presence:lobby/lobby 101 alice offline except null'
  ])
  t.same(list, [], 'the list is read after her exit')
})

t.test('a quick exit then enter announces offline then online even when the store answers the join first', async (t) => {
  // The store promises that one node's calls take effect in order, not that its answers arrive
  // in order (a Redis store's answers may take different numbers of promise hops, or come from
  // separate connections). Here the leave and the join both took effect, in that order, and both
  // were transitions; the events must say so in that order, or the room is left seeing alice
  // offline while she is there.
  const { store, calls, answer } = answeredByHand()
  const statuses: string[] = []
  const presence = createPresence({
    store,
    broadcast: (_roomId, event) => { statuses.push((JSON.parse(event.text) as { status: string }).status) },
    seen: () => {},
    log: recordingLog().log
  })
  t.teardown(() => { void presence.close() })
  const first = presence.entered('lobby', alice, socket('ws1'))
  answer('join', true)
  await settle()
  answer('online', [{ userId: alice.id, username: alice.username }])
  await first
  presence.exited('lobby', alice)
  const second = presence.entered('lobby', alice, socket('ws2'))
  t.same(calls(), ['join', 'online', 'leave', 'join'], 'the calls, in order')
  answer('join', true)
  await settle()
  answer('leave', true)
  await settle()
  answer('online', [{ userId: alice.id, username: alice.username }])
  await second
  t.same(statuses, ['online', 'offline', 'online'], 'offline then online, as the store applied them')
})

t.test('store failures are never thrown from connected, entered, disconnected or exited, and logged once per outage', async (t) => {
  const { presence, failing, logged, sent, seen } = setup(t)
  failing.add('connect').add('disconnect').add('leave').add('join').add('online')
  t.doesNotThrow(() => { presence.connected(alice) })
  await settle()
  t.same(seen, ['101'], 'seen does not depend on the store')
  t.doesNotThrow(() => { presence.disconnected(alice) })
  await settle()
  t.same(seen, ['101', '101'])
  presence.connected(alice)
  t.same(await presence.entered('lobby', alice, socket('ws1')), [{ userId: alice.id, username: alice.username }], 'a join while the store is away is told this node\'s own view')
  t.doesNotThrow(() => { presence.exited('lobby', alice) })
  presence.disconnected(alice)
  await settle()
  t.match(logged, [{ level: 'warn', obj: { err: { message: 'store down (connect)' } }, msg: /presence store/ }], 'one warning, with the first error')
  t.equal(logged.length, 1, 'the later failures of the same outage are not logged')
  t.equal(sent.length, 0, 'nothing announced for changes the store did not take')
  failing.clear()
  presence.connected(bob)
  await settle()
  t.match(logged.slice(1), [{ level: 'info', msg: /presence store/ }], 'the first success after it: one info line')
  presence.disconnected(bob)
  await settle()
  t.equal(logged.length, 2, 'and no more while it works')
  failing.add('disconnect')
  presence.connected(alice)
  presence.disconnected(alice)
  await settle()
  t.match(logged.slice(2), [{ level: 'warn', obj: { err: { message: 'store down (disconnect)' } } }], 'the next outage is logged again')
})

t.test('a failed store join still joins, announcing nothing; its exited still releases the count', async (t) => {
  const { presence, failing, calls, sent } = setup(t)
  failing.add('join')
  await t.resolves(presence.entered('lobby', alice, socket('ws1')))
  t.equal(sent.length, 0, 'no online event for a claim the store did not take')
  presence.exited('lobby', alice)
  await settle()
  failing.delete('join')
  calls.length = 0
  await presence.entered('lobby', alice, socket('ws2'))
  t.same(calls, ['join', 'online'], 'the next socket is a first socket again')
  t.equal(sent.length, 1)
})

t.test('the lease is renewed and dead nodes swept while open, and neither after close', async (t) => {
  const { presence, calls, logged } = setup(t, 30)
  const count = (method: Method): number => calls.filter((m) => m === method).length
  const deadline = Date.now() + 3000
  while ((count('touch') < 2 || count('sweep') < 2) && Date.now() < deadline) await sleep(5)
  t.ok(count('touch') >= 2, 'touches while open')
  t.ok(count('sweep') >= 2, 'sweeps while open')
  await presence.close()
  t.equal(count('close'), 1, 'close closes the store')
  const atClose = calls.length
  await sleep(60)
  t.equal(calls.length, atClose, 'nothing after close')
  t.same(logged, [])
})

t.test('failing touches and sweeps are logged once, and their end once', async (t) => {
  const { presence, failing, logged, calls } = setup(t, 15)
  failing.add('touch').add('sweep')
  const deadline = Date.now() + 3000
  while (calls.filter((m) => m === 'touch' || m === 'sweep').length < 6 && Date.now() < deadline) await sleep(5)
  t.match(logged, [{ level: 'warn', obj: { err: { message: /store down \((touch|sweep)\)/ } } }], 'one warning for many failures')
  failing.clear()
  const seenTouch = calls.length
  while (calls.length < seenTouch + 2 && Date.now() < deadline) await sleep(5)
  await presence.close()
  t.match(logged.slice(1), [{ level: 'info' }], 'one info line once they work again')
  t.equal(logged.length, 2)
})

t.test('what a touch puts back is announced online to the whole room; server-wide changes are not announced', async (t) => {
  const { store, answer, waitFor } = answeredByHand(30)
  const { broadcast, events } = eventRecorder()
  const seen: string[] = []
  const presence = createPresence({ store, broadcast, seen: (userId) => { seen.push(userId) }, log: recordingLog().log })
  await waitFor('touch')
  answer('touch', {
    online: [{ roomId: 'lobby', userId: '101', username: 'alice' }, { roomId: null, userId: '101', username: 'alice' }, { roomId: 'kitchen', userId: '102', username: 'bob' }],
    offline: [{ roomId: 'attic', userId: '103', username: 'carol' }]
  })
  await waitFor('touch')
  t.same(events(), [
    'presence:attic/attic 103 carol offline except null',
    'presence:lobby/lobby 101 alice online except null',
    'presence:kitchen/kitchen 102 bob online except null'
  ], 'one event per room change, to every socket there')
  t.same(seen, [], 'a touch does not make anyone seen')
  await waitFor('sweep')
  answer('sweep', [])
  answer('touch', { online: [], offline: [] })
  const closing = presence.close()
  // A tick may have made one more touch or sweep before close (ticks every 5 ms here).
  await waitFor('close', { touch: { online: [], offline: [] }, sweep: [] })
  answer('close', [])
  await closing
})

t.test('what a sweep removes is announced offline once, and the server-wide ones recorded as seen', async (t) => {
  const shared = createMemoryPresence({ leaseMs: 30 })
  const dead = shared.forNode('dead')
  await dead.join('lobby', { userId: '101', username: 'alice' })
  await dead.connect({ userId: '101', username: 'alice' })
  await dead.join('lobby', { userId: '102', username: 'bob' })
  const sweepers = ['one', 'two'].map((nodeId) => {
    const { broadcast, events } = eventRecorder()
    const seen: string[] = []
    const presence = createPresence({ store: shared.forNode(nodeId), broadcast, seen: (userId) => { seen.push(userId) }, log: recordingLog().log })
    return { presence, events, seen }
  })
  // Both keep their own node live while `dead` stops touching; each sweeps every 10 ms.
  await sleep(150)
  for (const { presence } of sweepers) await presence.close()
  const events = sweepers.flatMap((s) => s.events()).sort()
  t.same(events, [
    'presence:lobby/lobby 101 alice offline except null',
    'presence:lobby/lobby 102 bob offline except null'
  ], 'once between the two nodes, to every socket in the room')
  t.same(sweepers.flatMap((s) => s.seen), ['101'], 'the dead node could not write last_seen_at: the sweeper does')
})

t.test('a touch\'s announcements keep their place among the node\'s own', async (t) => {
  const { store, answer, waitFor } = answeredByHand(30)
  const { broadcast, events } = eventRecorder()
  const presence = createPresence({ store, broadcast, seen: () => {}, log: recordingLog().log })
  const entering = presence.entered('lobby', alice, socket('ws1'))
  answer('join', true)
  await waitFor('online')
  answer('online', [{ userId: alice.id, username: alice.username }])
  await entering
  // The store put alice back (her claim had been swept), then took her leave: online, offline.
  await waitFor('touch')
  presence.exited('lobby', alice)
  answer('leave', true)
  await settle()
  t.same(events(), ['presence:lobby/lobby 101 alice online except ws1'], 'the leave waits for the touch made before it')
  answer('touch', { online: [{ roomId: 'lobby', userId: '101', username: 'alice' }], offline: [] })
  await waitFor('sweep')
  answer('sweep', [])
  await settle()
  t.same(events().slice(1), [
    'presence:lobby/lobby 101 alice online except null',
    'presence:lobby/lobby 101 alice offline except null'
  ], 'as the store applied them')
  const closing = presence.close()
  // Ticks come every 5 ms here: on a busy machine one may have made a touch or sweep after the
  // sweep above, and close waits for it.
  await waitFor('close', { touch: { online: [], offline: [] }, sweep: [] })
  answer('close', [])
  await closing
})

t.test('close waits for the announcements under way, closes the store, and announces who went offline before it resolves', async (t) => {
  const { store, answer, waitFor, calls } = answeredByHand()
  const { broadcast, events } = eventRecorder()
  const presence = createPresence({ store, broadcast, seen: () => {}, log: recordingLog().log })
  const entering = presence.entered('lobby', alice, socket('ws1'))
  answer('join', true)
  await waitFor('online')
  answer('online', [])
  await entering
  presence.exited('lobby', alice)
  let closed = false
  const closing = presence.close().then(() => { closed = true })
  await settle()
  t.same(calls().filter((m) => m === 'close'), [], 'not while the leave is unanswered')
  answer('leave', true)
  await waitFor('close')
  t.equal(closed, false)
  answer('close', [{ roomId: 'lobby', userId: '102', username: 'bob' }, { roomId: null, userId: '102', username: 'bob' }])
  await closing
  t.same(events(), [
    'presence:lobby/lobby 101 alice online except ws1',
    'presence:lobby/lobby 101 alice offline except null',
    'presence:lobby/lobby 102 bob offline except null'
  ], 'alice\'s leave first, then what close returned, before close resolved')
})

t.test('a failed close is logged, not thrown', async (t) => {
  const { presence, failing, logged } = setup(t)
  failing.add('close')
  await presence.close()
  t.match(logged, [{ level: 'warn', obj: { err: { message: 'store down (close)' } } }])
})
