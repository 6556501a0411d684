import t from 'tap'
import type { RateState } from '../../src/fanout/socket-state.js'
import { createFrameLimit, type FrameLimit, type Verdict } from '../../src/gateway/rate-limit.js'

const T0 = 5_000_000

/** Takes `count` frames of `cost` at the same instant and lists the verdicts. */
function takeMany (limit: FrameLimit, state: RateState, count: number, now: number, cost = 1): Verdict[] {
  return Array.from({ length: count }, () => limit.take(state, cost, now))
}

const repeat = (verdict: Verdict, count: number): Verdict[] => Array<Verdict>(count).fill(verdict)

t.test('a fresh socket starts with a full bucket and no strikes', async (t) => {
  const limit = createFrameLimit({ rate: 10, burst: 20, maxStrikes: 3 })
  t.same(limit.initial(T0), { tokens: 20, refilledAt: T0, strikes: 0 })
})

t.test('the burst passes at once; the next frame is limited', async (t) => {
  const limit = createFrameLimit({ rate: 10, burst: 5, maxStrikes: 100 })
  const state = limit.initial(T0)
  t.same(takeMany(limit, state, 5, T0), repeat('ok', 5))
  t.equal(state.tokens, 0)
  t.equal(limit.take(state, 1, T0), 'limited')
  t.equal(state.tokens, 0, 'a refused frame takes nothing')
})

t.test('tokens refill at `rate` per second', async (t) => {
  const limit = createFrameLimit({ rate: 10, burst: 5, maxStrikes: 100 })
  const state = limit.initial(T0)
  takeMany(limit, state, 5, T0)
  t.equal(limit.take(state, 1, T0 + 99), 'limited', '99 ms: 0.99 of a token')
  t.equal(limit.take(state, 1, T0 + 100), 'ok', '100 ms: one token')
  t.equal(limit.take(state, 1, T0 + 100), 'limited', 'and only one')
  t.same(takeMany(limit, state, 3, T0 + 400), repeat('ok', 3), '300 ms later: three more')
  t.equal(limit.take(state, 1, T0 + 400), 'limited')
  t.equal(state.refilledAt, T0 + 400)
})

t.test('refill never exceeds the burst however long the socket was quiet', async (t) => {
  const limit = createFrameLimit({ rate: 10, burst: 5, maxStrikes: 100 })
  const state = limit.initial(T0)
  takeMany(limit, state, 5, T0)
  const later = T0 + 3_600_000
  t.same(takeMany(limit, state, 6, later), [...repeat('ok', 5), 'limited'], 'an hour later: still just the burst')
})

t.test('a sustained stream at the rate is never limited', async (t) => {
  const limit = createFrameLimit({ rate: 50, burst: 1, maxStrikes: 0 })
  const state = limit.initial(T0)
  const verdicts = Array.from({ length: 500 }, (_, i) => limit.take(state, 1, T0 + i * 20))
  t.same(verdicts, repeat('ok', 500))
})

t.test('partial tokens carry over between frames', async (t) => {
  const limit = createFrameLimit({ rate: 4, burst: 1, maxStrikes: 100 })
  const state = limit.initial(T0)
  t.equal(limit.take(state, 1, T0), 'ok')
  t.equal(limit.take(state, 1, T0 + 125), 'limited', 'half a token')
  t.equal(limit.take(state, 1, T0 + 250), 'ok', 'the two halves make one')
})

t.test('a frame costing more takes more tokens', async (t) => {
  const limit = createFrameLimit({ rate: 10, burst: 10, maxStrikes: 100 })
  const state = limit.initial(T0)
  t.equal(limit.take(state, 4, T0), 'ok')
  t.equal(state.tokens, 6)
  t.equal(limit.take(state, 4, T0), 'ok')
  t.equal(limit.take(state, 4, T0), 'limited', 'two left, four needed')
  t.equal(state.tokens, 2)
  t.equal(limit.take(state, 1, T0), 'ok', 'a cheaper frame still fits')
  t.equal(limit.take(state, 4, T0 + 300), 'ok', '1 + 3 tokens')
})

t.test('a cost above the burst is capped at the burst, so a full bucket lets it through', async (t) => {
  const limit = createFrameLimit({ rate: 1, burst: 3, maxStrikes: 100 })
  const state = limit.initial(T0)
  t.equal(limit.take(state, 1000, T0), 'ok')
  t.equal(state.tokens, 0, 'it empties the bucket')
  t.equal(limit.take(state, 1000, T0 + 2_999), 'limited')
  t.equal(limit.take(state, 1000, T0 + 3_000), 'ok', 'and needs a full bucket again')
})

t.test('after maxStrikes refusals in a row the next one closes', async (t) => {
  const limit = createFrameLimit({ rate: 1, burst: 1, maxStrikes: 3 })
  const state = limit.initial(T0)
  t.equal(limit.take(state, 1, T0), 'ok')
  t.same(takeMany(limit, state, 3, T0), repeat('limited', 3))
  t.equal(state.strikes, 3)
  t.equal(limit.take(state, 1, T0), 'close')
  t.equal(state.strikes, 4)
  t.equal(limit.take(state, 1, T0), 'close', 'and keeps saying so')
})

t.test('maxStrikes 0 closes on the first refusal', async (t) => {
  const limit = createFrameLimit({ rate: 1, burst: 1, maxStrikes: 0 })
  const state = limit.initial(T0)
  t.same(takeMany(limit, state, 2, T0), ['ok', 'close'])
})

t.test('the first frame that fits resets the strikes', async (t) => {
  const limit = createFrameLimit({ rate: 10, burst: 1, maxStrikes: 3 })
  const state = limit.initial(T0)
  t.equal(limit.take(state, 1, T0), 'ok')
  t.same(takeMany(limit, state, 3, T0), repeat('limited', 3))
  t.equal(limit.take(state, 1, T0 + 100), 'ok', 'a token has come back')
  t.equal(state.strikes, 0)
  t.same(takeMany(limit, state, 4, T0 + 100), [...repeat('limited', 3), 'close'], 'the count starts over')
})

t.test('refused frames still count toward the refill clock, not against it', async (t) => {
  const limit = createFrameLimit({ rate: 10, burst: 2, maxStrikes: 100 })
  const state = limit.initial(T0)
  takeMany(limit, state, 2, T0)
  t.equal(limit.take(state, 1, T0 + 50), 'limited')
  t.equal(limit.take(state, 1, T0 + 100), 'ok', 'time before a refusal is not lost')
})

t.test('sockets have their own buckets', async (t) => {
  const limit = createFrameLimit({ rate: 1, burst: 2, maxStrikes: 1 })
  const a = limit.initial(T0)
  const b = limit.initial(T0)
  t.same(takeMany(limit, a, 4, T0), ['ok', 'ok', 'limited', 'close'])
  t.same(takeMany(limit, b, 2, T0), ['ok', 'ok'])
  t.equal(b.strikes, 0)
})
