import t from 'tap'
import { createLimiter, type Slot } from '../../src/limiter.js'

/** Lets every already-resolved promise callback run, so `ready` handlers have fired if they are going to. */
const settle = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

/** Tracks whether a slot's `ready` has resolved. */
function watch (slot: Slot | null): { slot: Slot, started: () => boolean } {
  if (slot === null) throw new Error('expected a slot')
  let started = false
  void slot.ready.then(() => { started = true })
  return { slot, started: () => started }
}

t.test('at most `concurrency` slots run; the rest wait', async (t) => {
  const limiter = createLimiter(2, 10)
  const a = watch(limiter.tryAcquire())
  const b = watch(limiter.tryAcquire())
  const c = watch(limiter.tryAcquire())
  await settle()
  t.ok(a.started() && b.started(), 'the first two run at once')
  t.notOk(c.started(), 'the third waits')
  t.equal(limiter.running, 2)
  t.equal(limiter.waiting, 1)
  a.slot.done()
  await settle()
  t.ok(c.started(), 'a freed slot goes to the waiter')
  t.equal(limiter.running, 2)
  t.equal(limiter.waiting, 0)
  b.slot.done()
  c.slot.done()
  t.equal(limiter.running, 0)
})

t.test('many tasks never exceed the bound', async (t) => {
  const limiter = createLimiter(3, 100)
  let active = 0
  let peak = 0
  const tasks = Array.from({ length: 50 }, async (_, i) => {
    const slot = limiter.tryAcquire()
    if (slot === null) throw new Error('queue should not be full')
    await slot.ready
    active++
    peak = Math.max(peak, active)
    await new Promise((resolve) => setTimeout(resolve, i % 3))
    active--
    slot.done()
  })
  await Promise.all(tasks)
  t.equal(peak, 3)
  t.equal(limiter.running, 0)
  t.equal(limiter.waiting, 0)
})

t.test('a full queue answers null at once', async (t) => {
  const limiter = createLimiter(1, 2)
  const running = limiter.tryAcquire()
  const w1 = limiter.tryAcquire()
  const w2 = limiter.tryAcquire()
  t.not(running, null)
  t.not(w1, null)
  t.not(w2, null)
  t.equal(limiter.tryAcquire(), null, 'concurrency + queue taken')
  t.equal(limiter.waiting, 2, 'a refused call does not queue')
  running?.done()
  t.not(limiter.tryAcquire(), null, 'room again once one moves up')
})

t.test('a queue of 0 refuses as soon as every slot runs', async (t) => {
  const limiter = createLimiter(1, 0)
  const slot = limiter.tryAcquire()
  t.not(slot, null)
  t.equal(limiter.tryAcquire(), null)
  slot?.done()
  t.not(limiter.tryAcquire(), null)
})

t.test('done() is idempotent', async (t) => {
  const limiter = createLimiter(1, 5)
  const a = watch(limiter.tryAcquire())
  const b = watch(limiter.tryAcquire())
  const c = watch(limiter.tryAcquire())
  await settle()
  a.slot.done()
  a.slot.done()
  a.slot.done()
  await settle()
  t.ok(b.started(), 'the next waiter runs')
  t.notOk(c.started(), 'repeated done() did not free more slots')
  t.equal(limiter.running, 1)
  t.equal(limiter.waiting, 1)
  b.slot.done()
  c.slot.done()
  c.slot.done()
  t.equal(limiter.running, 0, 'the count never goes below zero')
  const d = watch(limiter.tryAcquire())
  const e = watch(limiter.tryAcquire())
  await settle()
  t.ok(d.started())
  t.notOk(e.started(), 'the bound still holds after extra done() calls')
})

t.test('waiters are woken in arrival order', async (t) => {
  const limiter = createLimiter(1, 10)
  const first = limiter.tryAcquire()
  const order: number[] = []
  const finished = [1, 2, 3, 4, 5].map(async (n) => {
    const slot = limiter.tryAcquire()
    if (slot === null) throw new Error('expected a slot')
    await slot.ready
    order.push(n)
    // Hand over on the next turn, as real work would, so wake order is not just call order.
    await new Promise((resolve) => setImmediate(resolve))
    slot.done()
  })
  first?.done()
  await Promise.all(finished)
  t.same(order, [1, 2, 3, 4, 5])
  t.equal(limiter.running, 0)
})

// Slot.done() says "call exactly once, also on failure": a caller that gives up while still queued
// (e.g. its request was aborted) calls done() before `ready`. That must withdraw it from the queue,
// not free a slot it never held.
t.test('done() on a slot that is still waiting withdraws it without freeing a running slot', async (t) => {
  const limiter = createLimiter(1, 5)
  const a = watch(limiter.tryAcquire())
  const b = watch(limiter.tryAcquire())
  const c = watch(limiter.tryAcquire())
  c.slot.done()
  await settle()
  t.notOk(b.started(), 'b still waits: a holds the only slot')
  t.equal(limiter.running, 1)
  t.equal(limiter.waiting, 1, 'c left the queue')
  a.slot.done()
  await settle()
  t.ok(b.started())
  b.slot.done()
  await settle()
  t.notOk(c.started(), 'the withdrawn slot is never started')
  t.equal(limiter.running, 0, 'no slot leaked')
  t.equal(limiter.waiting, 0)
})
