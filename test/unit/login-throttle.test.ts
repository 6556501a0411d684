import t, { type Test } from 'tap'
import { createLoginThrottle, type LoginAttempt, type LoginThrottle, type LoginThrottleOptions } from '../../src/auth/login-throttle.js'

/** A clock the test moves by hand, so windows expire without waiting. */
function clock (start = 1_000_000): { now: () => number, advance: (ms: number) => void } {
  let time = start
  return { now: () => time, advance: (ms) => { time += ms } }
}

/** An admitted attempt, or a failed assertion when it was refused. */
function admitted (t: Test, throttle: LoginThrottle, address: string, username: string): LoginAttempt {
  const admission = throttle.admit(address, username)
  if (!admission.admitted) {
    t.fail(`expected ${address} ${username} to be admitted, told to wait ${admission.retryAfterMs} ms`)
    return { failed () {}, succeeded () {}, abandoned () {} }
  }
  return admission.attempt
}

/** 0 when admitted (the attempt is abandoned, so probing changes nothing), else the wait in ms. */
function retryAfter (throttle: LoginThrottle, address: string, username: string): number {
  const admission = throttle.admit(address, username)
  if (!admission.admitted) return admission.retryAfterMs
  admission.attempt.abandoned()
  return 0
}

function fail (t: Test, throttle: LoginThrottle, address: string, username: string, times = 1): void {
  for (let i = 0; i < times; i++) admitted(t, throttle, address, username).failed()
}

// A high address factor keeps the per-address limit out of tests about the per-user one.
const options = (now: () => number, extra: Partial<LoginThrottleOptions> = {}): LoginThrottleOptions =>
  ({ maxFailures: 3, addressFactor: 100, windowMs: 60_000, now, ...extra })

t.test('admitted until maxFailures failures, then told the rest of the window', async (t) => {
  const { now, advance } = clock()
  const throttle = createLoginThrottle(options(now))
  t.equal(retryAfter(throttle, '10.0.0.1', 'alice'), 0, 'a fresh key may go ahead')
  fail(t, throttle, '10.0.0.1', 'alice', 2)
  t.equal(retryAfter(throttle, '10.0.0.1', 'alice'), 0, 'below the limit')
  fail(t, throttle, '10.0.0.1', 'alice')
  t.equal(retryAfter(throttle, '10.0.0.1', 'alice'), 60_000, 'at the limit: the whole window')
  advance(15_000)
  t.equal(retryAfter(throttle, '10.0.0.1', 'alice'), 45_000, 'counts down with the clock')
  t.equal(retryAfter(throttle, '10.0.0.1', 'bob'), 0, 'another username from the same address')
  t.equal(retryAfter(throttle, '10.0.0.2', 'alice'), 0, 'the same username from another address')
})

t.test('usernames are compared without case', async (t) => {
  const { now } = clock()
  const throttle = createLoginThrottle(options(now))
  fail(t, throttle, '10.0.0.1', 'Alice', 2)
  fail(t, throttle, '10.0.0.1', 'ALICE')
  t.ok(retryAfter(throttle, '10.0.0.1', 'alice') > 0)
})

t.test('a success clears the username\'s failures', async (t) => {
  const { now } = clock()
  const throttle = createLoginThrottle(options(now))
  fail(t, throttle, '10.0.0.1', 'alice', 2)
  admitted(t, throttle, '10.0.0.1', 'alice').succeeded()
  fail(t, throttle, '10.0.0.1', 'alice', 2)
  t.equal(retryAfter(throttle, '10.0.0.1', 'alice'), 0, 'counting started again from zero')
  fail(t, throttle, '10.0.0.1', 'alice')
  t.ok(retryAfter(throttle, '10.0.0.1', 'alice') > 0)
})

t.test('an abandoned attempt counts for nothing', async (t) => {
  const { now } = clock()
  const throttle = createLoginThrottle(options(now))
  for (let i = 0; i < 10; i++) admitted(t, throttle, '10.0.0.1', 'alice').abandoned()
  fail(t, throttle, '10.0.0.1', 'alice', 2)
  t.equal(retryAfter(throttle, '10.0.0.1', 'alice'), 0)
})

t.test('settling an attempt twice counts once', async (t) => {
  const { now } = clock()
  const throttle = createLoginThrottle(options(now))
  const attempt = admitted(t, throttle, '10.0.0.1', 'alice')
  attempt.failed()
  attempt.failed()
  attempt.failed()
  attempt.succeeded()
  fail(t, throttle, '10.0.0.1', 'alice')
  t.equal(retryAfter(throttle, '10.0.0.1', 'alice'), 0, 'two failures so far, not four')
})

t.test('attempts in flight count: concurrent guesses cannot pass the limit', async (t) => {
  const { now } = clock()
  const throttle = createLoginThrottle(options(now))
  const inFlight = [1, 2, 3].map(() => admitted(t, throttle, '10.0.0.1', 'alice'))
  const refused = throttle.admit('10.0.0.1', 'alice')
  t.equal(refused.admitted, false, 'a fourth guess while three are being checked')
  t.ok(!refused.admitted && refused.retryAfterMs > 0 && refused.retryAfterMs <= 60_000)
  inFlight[0]?.abandoned()
  t.equal(retryAfter(throttle, '10.0.0.1', 'alice'), 0, 'room again once one settles without failing')
  inFlight[1]?.failed()
  inFlight[2]?.failed()
  fail(t, throttle, '10.0.0.1', 'alice')
  t.equal(retryAfter(throttle, '10.0.0.1', 'alice'), 60_000, 'three failures: the window')
})

t.test('one address is limited across usernames (password spraying)', async (t) => {
  const { now } = clock()
  const throttle = createLoginThrottle(options(now, { maxFailures: 2, addressFactor: 3 }))
  for (let i = 0; i < 6; i++) fail(t, throttle, '10.0.0.1', `user${i}`)
  t.equal(retryAfter(throttle, '10.0.0.1', 'fresh_name'), 60_000, '2 × 3 failures from one address')
  t.equal(retryAfter(throttle, '10.0.0.2', 'fresh_name'), 0, 'other addresses are not affected')
})

t.test('a success does not clear the address\'s failures', async (t) => {
  const { now } = clock()
  const throttle = createLoginThrottle(options(now, { maxFailures: 2, addressFactor: 2 }))
  fail(t, throttle, '10.0.0.1', 'a')
  fail(t, throttle, '10.0.0.1', 'b')
  fail(t, throttle, '10.0.0.1', 'c')
  // The sprayer's own account: logging into it must not reset the spray count.
  admitted(t, throttle, '10.0.0.1', 'mine').succeeded()
  fail(t, throttle, '10.0.0.1', 'd')
  t.ok(retryAfter(throttle, '10.0.0.1', 'e') > 0)
})

t.test('an expired window forgets the failures', async (t) => {
  const { now, advance } = clock()
  const throttle = createLoginThrottle(options(now))
  fail(t, throttle, '10.0.0.1', 'alice', 3)
  advance(59_999)
  t.equal(retryAfter(throttle, '10.0.0.1', 'alice'), 1)
  advance(1)
  t.equal(retryAfter(throttle, '10.0.0.1', 'alice'), 0, 'free exactly when the window ends')
  fail(t, throttle, '10.0.0.1', 'alice', 2)
  t.equal(retryAfter(throttle, '10.0.0.1', 'alice'), 0, 'a new window, counted from zero')
  fail(t, throttle, '10.0.0.1', 'alice')
  t.equal(retryAfter(throttle, '10.0.0.1', 'alice'), 60_000, 'with its own full length')
})

t.test('failures spread over expired windows never add up', async (t) => {
  const { now, advance } = clock()
  const throttle = createLoginThrottle(options(now, { windowMs: 1_000 }))
  for (let i = 0; i < 10; i++) {
    fail(t, throttle, '10.0.0.1', 'alice')
    advance(1_000)
  }
  t.equal(retryAfter(throttle, '10.0.0.1', 'alice'), 0)
})

// The window can end while a password is being checked (the hash takes a while). A late failure
// must then count in the new window, as it does when another attempt is still in flight; dropping
// it lets guesses timed at window edges go uncounted.
t.test('a failure settled after its window expired counts in the next window', async (t) => {
  t.test('with another attempt still in flight', async (t) => {
    const { now, advance } = clock()
    const throttle = createLoginThrottle(options(now, { maxFailures: 2 }))
    const slow = admitted(t, throttle, '10.0.0.1', 'alice')
    const other = admitted(t, throttle, '10.0.0.1', 'alice')
    advance(60_000)
    slow.failed()
    other.abandoned()
    fail(t, throttle, '10.0.0.1', 'alice')
    t.ok(retryAfter(throttle, '10.0.0.1', 'alice') > 0, 'two failures in the new window reach the limit of 2')
  })

  t.test('alone', async (t) => {
    const { now, advance } = clock()
    const throttle = createLoginThrottle(options(now, { maxFailures: 2 }))
    const slow = admitted(t, throttle, '10.0.0.1', 'alice')
    advance(60_000)
    slow.failed()
    fail(t, throttle, '10.0.0.1', 'alice')
    t.ok(retryAfter(throttle, '10.0.0.1', 'alice') > 0, 'two failures in the new window reach the limit of 2')
  })
})

t.test('maxKeys forgets the oldest key first', async (t) => {
  const { now, advance } = clock()
  const throttle = createLoginThrottle(options(now, { maxFailures: 1, maxKeys: 3 }))
  // Distinct addresses, so the per-user and per-address counters both hold exactly these keys.
  for (const address of ['a', 'b', 'c']) {
    fail(t, throttle, address, 'alice')
    advance(1)
  }
  // Refused keys are probed freely; an admitted probe would itself take a place (and evict).
  t.ok(['a', 'b', 'c'].every((address) => retryAfter(throttle, address, 'alice') > 0), 'three keys fit')
  fail(t, throttle, 'd', 'alice')
  t.ok(['b', 'c', 'd'].every((address) => retryAfter(throttle, address, 'alice') > 0), 'the newer keys and the new one stay')
  fail(t, throttle, 'e', 'alice')
  t.ok(['c', 'd', 'e'].every((address) => retryAfter(throttle, address, 'alice') > 0), 'still the three newest')
  t.equal(retryAfter(throttle, 'a', 'alice'), 0, 'the oldest was evicted first')
  t.equal(retryAfter(throttle, 'b', 'alice'), 0, 'then the next oldest')
})

t.test('probing a key does not evict anything', async (t) => {
  const { now } = clock()
  const throttle = createLoginThrottle(options(now, { maxFailures: 1, maxKeys: 2 }))
  fail(t, throttle, 'a', 'alice')
  fail(t, throttle, 'b', 'alice')
  // Refused admissions create no entry, so asking about known keys again and again is free.
  for (let i = 0; i < 5; i++) {
    t.ok(retryAfter(throttle, 'a', 'alice') > 0)
    t.ok(retryAfter(throttle, 'b', 'alice') > 0)
  }
})

t.test('defaults to the real clock', async (t) => {
  const throttle = createLoginThrottle({ maxFailures: 1, addressFactor: 10, windowMs: 60_000 })
  fail(t, throttle, '10.0.0.1', 'alice')
  const wait = retryAfter(throttle, '10.0.0.1', 'alice')
  t.ok(wait > 59_000 && wait <= 60_000, `about a minute (${wait})`)
})
