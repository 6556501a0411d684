import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { Socket, SocketState } from '../../src/fanout/socket-state.js'
import { createTyping, type Typing, type TypingOptions } from '../../src/gateway/typing.js'

/** What typing reads of a socket's state. */
type TypingState = Pick<SocketState, 'user' | 'open' | 'typing'>

/** Typing only calls getUserData(): a socket with just that, labelled for the assertions. */
function fakeSocket (label: string, id = '101', username = 'alice'): { ws: Socket, state: TypingState } {
  const state: TypingState = { user: { id, username }, open: true, typing: undefined }
  const ws = { label, getUserData: () => state } as unknown as Socket
  return { ws, state }
}

const TIMEOUT_MS = 40
const RELAY_EVERY_MS = 1000

interface Sent { readonly roomId: string, readonly text: string, readonly except: Socket | null }

function setup (t: Test, extra: Partial<TypingOptions> = {}): {
  typing: Typing
  sent: Sent[]
  clock: { time: number }
  /** The frames sent, as `room user typing except`; every frame is checked against the API shape. */
  relayed: () => string[]
} {
  const sent: Sent[] = []
  const clock = { time: 1_700_000_000_000 }
  const typing = createTyping({
    broadcast: (roomId, event, except) => {
      t.equal(event.userId, (JSON.parse(event.text) as { userId: string }).userId, 'the event names the user it is about')
      sent.push({ roomId, text: event.text, except })
    },
    timeoutMs: TIMEOUT_MS,
    relayEveryMs: RELAY_EVERY_MS,
    now: () => clock.time,
    ...extra
  })
  const relayed = (): string[] => sent.map(({ roomId, text, except }) => {
    const frame = JSON.parse(text) as Record<string, unknown>
    t.strictSame(Object.keys(frame).sort(), ['room', 'type', 'typing', 'userId', 'username'], 'only the fields of a typing event')
    t.equal(frame.type, 'typing')
    t.equal(frame.room, roomId, 'the frame names the room it is sent to')
    t.equal(typeof frame.typing, 'boolean')
    const label = except === null ? 'null' : (except as unknown as { label: string }).label
    return `${roomId} ${String(frame.userId)} ${String(frame.username)} ${String(frame.typing)} except ${label}`
  })
  return { typing, sent, clock, relayed }
}

/** Waits until `n` frames were sent, or fails after a second. */
async function sentCount (sent: Sent[], n: number): Promise<void> {
  const deadline = Date.now() + 1000
  while (sent.length < n && Date.now() < deadline) await sleep(2)
  if (sent.length < n) throw new Error(`expected ${n} frames, ${sent.length} were sent`)
}

t.test('a first start is relayed to the room, except the typing socket', async (t) => {
  const { typing, sent, relayed } = setup(t)
  const { ws, state } = fakeSocket('ws1')
  typing.update(ws, 'lobby', true)
  t.same(relayed(), ['lobby 101 alice true except ws1'])
  t.strictSame(JSON.parse(sent[0]?.text ?? ''), { type: 'typing', room: 'lobby', userId: '101', username: 'alice', typing: true }, 'the exact frame')
  t.same([...state.typing?.keys() ?? []], ['lobby'], 'the socket now types in the lobby')
  typing.closed(ws)
})

t.test('refreshes within relayEveryMs are absorbed; one at relayEveryMs is relayed again', async (t) => {
  const { typing, clock, relayed } = setup(t)
  const { ws } = fakeSocket('ws1')
  typing.update(ws, 'lobby', true)
  clock.time += 1
  typing.update(ws, 'lobby', true)
  clock.time += RELAY_EVERY_MS - 2
  typing.update(ws, 'lobby', true)
  t.same(relayed(), ['lobby 101 alice true except ws1'], 'both refreshes absorbed')
  clock.time += 1
  typing.update(ws, 'lobby', true)
  t.same(relayed(), ['lobby 101 alice true except ws1', 'lobby 101 alice true except ws1'], 'relayed again, for sockets that joined since')
  clock.time += RELAY_EVERY_MS - 1
  typing.update(ws, 'lobby', true)
  t.equal(relayed().length, 2, 'the throttle counts from the last relay')
  clock.time += 1
  typing.update(ws, 'lobby', true)
  t.equal(relayed().length, 3)
  typing.closed(ws)
})

t.test('the throttle is per socket and room', async (t) => {
  const { typing, relayed } = setup(t)
  const one = fakeSocket('ws1')
  const two = fakeSocket('ws2', '102', 'bob')
  typing.update(one.ws, 'lobby', true)
  typing.update(one.ws, 'kitchen', true)
  typing.update(two.ws, 'lobby', true)
  typing.update(one.ws, 'lobby', true)
  t.same(relayed(), [
    'lobby 101 alice true except ws1',
    'kitchen 101 alice true except ws1',
    'lobby 102 bob true except ws2'
  ])
  typing.closed(one.ws)
  typing.closed(two.ws)
})

t.test('a start not refreshed for timeoutMs is followed by typing false', async (t) => {
  const { typing, sent, relayed } = setup(t)
  const { ws, state } = fakeSocket('ws1')
  const started = performance.now()
  typing.update(ws, 'lobby', true)
  await sleep(TIMEOUT_MS / 2)
  t.equal(sent.length, 1, 'not yet')
  await sentCount(sent, 2)
  // Node may fire a timer up to a millisecond early.
  t.ok(performance.now() - started >= TIMEOUT_MS - 1, 'not before timeoutMs')
  t.same(relayed(), ['lobby 101 alice true except ws1', 'lobby 101 alice false except ws1'])
  t.equal(state.typing?.has('lobby'), false, 'the socket no longer types there')
  typing.update(ws, 'lobby', false)
  typing.stop(ws, 'lobby')
  t.equal(sent.length, 2, 'a stop after the timeout relays nothing more')
  typing.update(ws, 'lobby', true)
  t.equal(sent.length, 3, 'a new start is relayed at once, though within relayEveryMs of the last')
  typing.closed(ws)
})

t.test('a refresh postpones the timeout, even when it is not relayed', async (t) => {
  const { typing, sent, relayed } = setup(t, { timeoutMs: 60 })
  const { ws } = fakeSocket('ws1')
  typing.update(ws, 'lobby', true)
  await sleep(40)
  const refreshed = performance.now()
  typing.update(ws, 'lobby', true)
  await sleep(40)
  t.equal(sent.length, 1, '80 ms after the start, but 40 after the refresh: still typing')
  await sentCount(sent, 2)
  t.ok(performance.now() - refreshed >= 60 - 1, 'the timeout counts from the refresh')
  t.same(relayed(), ['lobby 101 alice true except ws1', 'lobby 101 alice false except ws1'])
})

t.test('a stop without a start relays nothing', async (t) => {
  const { typing, sent } = setup(t)
  const { ws } = fakeSocket('ws1')
  typing.update(ws, 'lobby', false)
  typing.stop(ws, 'lobby')
  typing.closed(ws)
  typing.update(ws, 'lobby', true)
  typing.update(ws, 'kitchen', false)
  t.equal(sent.length, 1, 'only the start in the lobby; nothing for a room it was not typing in')
  typing.closed(ws)
})

t.test('typing false after a start relays false once, and cancels the timeout', async (t) => {
  const { typing, sent, relayed } = setup(t)
  const { ws, state } = fakeSocket('ws1')
  typing.update(ws, 'lobby', true)
  typing.update(ws, 'lobby', false)
  typing.update(ws, 'lobby', false)
  t.same(relayed(), ['lobby 101 alice true except ws1', 'lobby 101 alice false except ws1'])
  t.equal(state.typing?.size, 0)
  await sleep(TIMEOUT_MS * 2)
  t.equal(sent.length, 2, 'no second false from the timer')
})

t.test('stop relays false once, and cancels the timeout', async (t) => {
  const { typing, sent, relayed } = setup(t)
  const { ws } = fakeSocket('ws1')
  typing.update(ws, 'lobby', true)
  typing.update(ws, 'kitchen', true)
  typing.stop(ws, 'lobby')
  typing.stop(ws, 'lobby')
  t.same(relayed().slice(2), ['lobby 101 alice false except ws1'])
  await sentCount(sent, 4)
  await sleep(TIMEOUT_MS)
  t.same(relayed().slice(3), ['kitchen 101 alice false except ws1'], 'only the kitchen times out')
})

t.test('closed stops every room the socket types in, once each', async (t) => {
  const { typing, sent, relayed } = setup(t)
  const { ws, state } = fakeSocket('ws1')
  const other = fakeSocket('ws2', '102', 'bob')
  for (const room of ['lobby', 'kitchen', 'attic']) typing.update(ws, room, true)
  typing.update(other.ws, 'lobby', true)
  typing.stop(ws, 'kitchen')
  const before = sent.length
  typing.closed(ws)
  t.same(relayed().slice(before).sort(), ['attic 101 alice false except ws1', 'lobby 101 alice false except ws1'], 'the rooms it still typed in')
  t.equal(state.typing?.size, 0)
  typing.closed(ws)
  t.equal(sent.length, before + 2, 'a second close relays nothing')
  await sleep(TIMEOUT_MS * 2)
  t.same(relayed().slice(before + 2), ['lobby 102 bob false except ws2'], 'no timer of the closed socket fires; the other socket\'s does')
})
