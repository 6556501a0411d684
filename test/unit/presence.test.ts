import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { Socket } from '../../src/fanout/socket-state.js'
import type { Log } from '../../src/logger.js'
import type { User } from '../../src/protocol/resources.js'
import { createMemoryPresence } from '../../src/presence/memory-presence-store.js'
import { createPresence, type Presence } from '../../src/presence/presence.js'
import type { OnlineUser, PresenceStore } from '../../src/presence/presence-store.js'

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

/** A Log that keeps what was logged. */
function recordingLog (): { log: Log, warnings: Array<{ readonly obj: unknown, readonly msg: unknown }> } {
  const warnings: Array<{ obj: unknown, msg: unknown }> = []
  const log = {
    warn: (obj: unknown, msg: unknown) => { warnings.push({ obj, msg }) },
    error: () => {},
    info: () => {}
  } as unknown as Log
  return { log, warnings }
}

type Method = 'join' | 'leave' | 'online' | 'connect' | 'disconnect' | 'isOnline' | 'touch'

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
    touch: async () => { await call('touch', async () => { await inner.touch() }) }
  }
  return { store, calls, failing }
}

function setup (t: Test, leaseMs = 60_000): {
  presence: Presence
  /** Another node sharing the store. */
  other: PresenceStore
  calls: Method[]
  failing: Set<Method>
  sent: Sent[]
  seen: string[]
  warnings: Array<{ readonly obj: unknown, readonly msg: unknown }>
  /** The presence events sent, as `room user status except`. */
  events: () => string[]
} {
  const shared = createMemoryPresence({ leaseMs })
  const { store, calls, failing } = recorded(shared.forNode('this'))
  const sent: Sent[] = []
  const seen: string[] = []
  const { log, warnings } = recordingLog()
  const presence = createPresence({
    store,
    broadcast: (roomId, event, except) => {
      const frame = JSON.parse(event.text)
      if (frame.userId !== event.userId) throw new Error(`a presence event about ${String(frame.userId)} says it is about ${event.userId}`)
      sent.push({ roomId, frame, except })
    },
    seen: (userId) => { seen.push(userId) },
    log
  })
  t.teardown(() => { presence.close() })
  const events = (): string[] => sent.map(({ roomId, frame, except }) => {
    const { type, room, userId, username, status } = frame as Record<string, unknown>
    const label = except === null ? 'null' : (except as unknown as { label: string }).label
    return `${String(type)}:${String(room)}/${roomId} ${String(userId)} ${String(username)} ${String(status)} except ${label}`
  })
  return { presence, other: shared.forNode('other'), calls, failing, sent, seen, warnings, events }
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
  const answers: Array<{ readonly method: string, answer (value: unknown): void }> = []
  const pending = <R>(method: string) => async (): Promise<R> => await new Promise<R>((resolve) => {
    answers.push({ method, answer: (value) => { resolve(value as R) } })
  })
  const store: PresenceStore = {
    leaseMs: 60_000,
    join: pending<boolean>('join'),
    leave: pending<boolean>('leave'),
    online: pending<OnlineUser[]>('online'),
    connect: pending<boolean>('connect'),
    disconnect: pending<boolean>('disconnect'),
    isOnline: pending<boolean>('isOnline'),
    touch: pending<undefined>('touch')
  }
  const statuses: string[] = []
  const presence = createPresence({
    store,
    broadcast: (_roomId, event) => { statuses.push((JSON.parse(event.text) as { status: string }).status) },
    seen: () => {},
    log: recordingLog().log
  })
  t.teardown(() => { presence.close() })
  const first = presence.entered('lobby', alice, socket('ws1'))
  answers[0]?.answer(true)
  await settle()
  answers[1]?.answer([{ userId: alice.id, username: alice.username }])
  await first
  presence.exited('lobby', alice)
  const second = presence.entered('lobby', alice, socket('ws2'))
  t.same(answers.map((a) => a.method), ['join', 'online', 'leave', 'join'], 'the calls, in order')
  answers[3]?.answer(true)
  await settle()
  answers[2]?.answer(true)
  await settle()
  answers[4]?.answer([{ userId: alice.id, username: alice.username }])
  await second
  t.same(statuses, ['online', 'offline', 'online'], 'offline then online, as the store applied them')
})

t.test('store failures are logged and never thrown from connected, disconnected or exited', async (t) => {
  const { presence, failing, warnings, sent, seen } = setup(t)
  failing.add('connect').add('disconnect').add('leave')
  t.doesNotThrow(() => { presence.connected(alice) })
  await settle()
  t.same(seen, ['101'], 'seen does not depend on the store')
  t.doesNotThrow(() => { presence.disconnected(alice) })
  await settle()
  t.same(seen, ['101', '101'])
  await presence.entered('lobby', alice, socket('ws1'))
  t.doesNotThrow(() => { presence.exited('lobby', alice) })
  await settle()
  t.same(warnings.map((w) => w.msg), ['presence not recorded', 'presence not cleared', 'presence not cleared'])
  t.match(warnings.map((w) => w.obj), [{ err: { message: 'store down (connect)' } }, { err: { message: 'store down (disconnect)' } }, { err: { message: 'store down (leave)' } }], 'with the error')
  t.equal(sent.length, 1, 'only the online event: no offline event for a leave that failed')
})

t.test('a failed join rejects entered; its exited still releases the count', async (t) => {
  const { presence, failing, calls, sent } = setup(t)
  failing.add('join')
  await t.rejects(presence.entered('lobby', alice, socket('ws1')), { message: 'store down (join)' })
  presence.exited('lobby', alice)
  await settle()
  failing.delete('join')
  calls.length = 0
  await presence.entered('lobby', alice, socket('ws2'))
  t.same(calls, ['join', 'online'], 'the next socket is a first socket again')
  t.equal(sent.length, 1)
})

t.test('the lease is renewed while open, and no more after close', async (t) => {
  const { presence, calls, warnings } = setup(t, 30)
  const touches = (): number => calls.filter((m) => m === 'touch').length
  const deadline = Date.now() + 3000
  while (touches() < 2 && Date.now() < deadline) await sleep(5)
  t.ok(touches() >= 2, 'touches while open')
  presence.close()
  const atClose = touches()
  await sleep(60)
  t.equal(touches(), atClose, 'none after close')
  t.same(warnings, [])
})

t.test('a failed touch is logged', async (t) => {
  const { presence, failing, warnings } = setup(t, 15)
  failing.add('touch')
  const deadline = Date.now() + 3000
  while (warnings.length === 0 && Date.now() < deadline) await sleep(5)
  presence.close()
  t.match(warnings[0], { msg: 'presence lease not renewed', obj: { err: { message: 'store down (touch)' } } })
})
