import t from 'tap'
import { createUserRateLimit } from '../../src/user-rate-limit.js'

/** A clock the test moves by hand (ms). */
function manualClock (): { now: () => number, advance: (ms: number) => void } {
  let at = 1_000_000
  return { now: () => at, advance: (ms) => { at += ms } }
}

t.test('a user may make `burst` requests at once, then one per 1/rate seconds', async (t) => {
  const clock = manualClock()
  const limit = createUserRateLimit({ rate: 2, burst: 3, now: clock.now })
  t.strictSame([limit.take('1'), limit.take('1'), limit.take('1')], [0, 0, 0], 'the burst goes through')
  t.equal(limit.take('1'), 1, 'the next waits: Retry-After 1 s (a token is back in 0.5 s)')
  clock.advance(499)
  t.ok(limit.take('1') > 0, 'still refused just before a token is back')
  clock.advance(1)
  t.equal(limit.take('1'), 0, 'a token is back after 1/rate s')
  t.ok(limit.take('1') > 0, 'and spent')
})

t.test('Retry-After is the whole seconds until a token is back', async (t) => {
  const clock = manualClock()
  const limit = createUserRateLimit({ rate: 0.25, burst: 1, now: clock.now })
  t.equal(limit.take('1'), 0)
  t.equal(limit.take('1'), 4, 'a token takes 4 s at 0.25/s')
  clock.advance(2500)
  t.equal(limit.take('1'), 2, '1.5 s left: 2')
})

t.test('each user has a bucket of their own', async (t) => {
  const clock = manualClock()
  const limit = createUserRateLimit({ rate: 1, burst: 1, now: clock.now })
  t.equal(limit.take('1'), 0)
  t.ok(limit.take('1') > 0, 'user 1 is limited')
  t.equal(limit.take('2'), 0, 'user 2 is not')
})

t.test('buckets that are full again are dropped; busy ones are kept', async (t) => {
  const clock = manualClock()
  // Full again 2 s after the last request.
  const limit = createUserRateLimit({ rate: 5, burst: 10, now: clock.now })
  for (let i = 0; i < 1000; i++) limit.take(String(i))
  t.equal(limit.size, 1000)
  clock.advance(1500)
  limit.take('busy')
  t.equal(limit.size, 1001, 'nothing is dropped before it could be full again')
  clock.advance(600)
  limit.take('busy')
  t.equal(limit.size, 1, 'only the bucket still in use is left')
  // A dropped bucket comes back full: dropping it lost nothing.
  for (let i = 0; i < 10; i++) t.equal(limit.take('7'), 0, `request ${i + 1} of a fresh burst`)
  t.ok(limit.take('7') > 0, 'then limited')
})

t.test('a tiny refill time does not sweep on every request', async (t) => {
  const clock = manualClock()
  const limit = createUserRateLimit({ rate: 1_000_000, burst: 1, now: clock.now })
  limit.take('a')
  clock.advance(10)
  limit.take('b')
  t.equal(limit.size, 2, 'no sweep within a second of the last')
  clock.advance(1000)
  limit.take('b')
  t.equal(limit.size, 1, 'a sweep a second later drops the idle bucket')
})
