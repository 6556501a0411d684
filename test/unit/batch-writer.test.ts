import t from 'tap'
import { createBatchWriter, WriteRefused, type BatchWriter, type BatchWriterOptions, type Schedule } from '../../src/pipeline/batch-writer.js'

/** Lets every already-resolved promise callback run, so the writer has reacted to whatever happened. */
const settle = async (): Promise<void> => {
  await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setImmediate(resolve))
}

/** The error the fake store throws when it is unreachable; `isUnavailable` recognises it. */
class StoreDown extends Error {}
/** The error the fake store throws for a batch holding a bad item. */
class BadItem extends Error {}
/** The connection broke after the write was sent: it may have committed. */
class Uncertain extends Error {}

interface Timer { readonly fn: () => void, readonly ms: number, cancelled: boolean, fired: boolean }

/** A schedule the test fires by hand, so no test waits for real time. */
function manualTimers (): { schedule: Schedule, all: Timer[], pending: () => Timer[], fire: () => number } {
  const all: Timer[] = []
  const schedule: Schedule = (fn, ms) => {
    const timer: Timer = { fn, ms, cancelled: false, fired: false }
    all.push(timer)
    return () => { timer.cancelled = true }
  }
  const pending = (): Timer[] => all.filter((timer) => !timer.cancelled && !timer.fired)
  const fire = (): number => {
    const due = pending()
    for (const timer of due) {
      timer.fired = true
      timer.fn()
    }
    return due.length
  }
  return { schedule, all, pending, fire }
}

interface Call { readonly items: string[], readonly batchId: string, ok (): void, resolve (out: string[]): void, reject (error: unknown): void }

/** A write function whose promises the test settles; it records how many writes ever overlapped. */
function controlledStore (): { write: (items: string[], batchId: string) => Promise<string[]>, calls: Call[], call: (i: number) => Call, maxInFlight: () => number, inFlight: () => number } {
  const calls: Call[] = []
  let inFlight = 0
  let maxInFlight = 0
  const write = async (items: string[], batchId: string): Promise<string[]> => {
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    try {
      return await new Promise<string[]>((resolve, reject) => {
        const copy = [...items]
        calls.push({ items: copy, batchId, ok: () => { resolve(copy.map(result)) }, resolve, reject })
      })
    } finally {
      inFlight--
    }
  }
  const call = (i: number): Call => {
    const found = calls[i]
    if (found === undefined) throw new Error(`expected write #${i}, only ${calls.length} happened`)
    return found
  }
  return { write, calls, call, maxInFlight: () => maxInFlight, inFlight: () => inFlight }
}

const result = (item: string): string => `stored:${item}`

/** Where a submission stands, checked synchronously by the test. */
class Tracked {
  state: 'pending' | 'resolved' | 'rejected' = 'pending'
  value: string | undefined
  error: unknown
  constructor (promise: Promise<string>) {
    promise.then((value) => { this.state = 'resolved'; this.value = value }, (error: unknown) => { this.state = 'rejected'; this.error = error })
  }

  /** The refusal reason, or what else happened. */
  get outcome (): string {
    if (this.state === 'pending') return 'pending'
    if (this.state === 'resolved') return `resolved ${String(this.value)}`
    if (this.error instanceof WriteRefused) return `refused ${this.error.reason}`
    if (this.error instanceof StoreDown) return 'store down'
    if (this.error instanceof BadItem) return 'bad item'
    return `rejected ${String(this.error)}`
  }
}

function setup (extra: Partial<BatchWriterOptions<string, string>> = {}): {
  writer: BatchWriter<string, string>
  store: ReturnType<typeof controlledStore>
  timers: ReturnType<typeof manualTimers>
  clock: { time: number }
  submit: (...items: string[]) => Tracked[]
} {
  const store = controlledStore()
  const timers = manualTimers()
  const clock = { time: 1_000_000 }
  const writer = createBatchWriter<string, string>({
    maxBatch: 3,
    maxDelayMs: 5,
    queueLimit: 100,
    write: store.write,
    isUnavailable: (error) => error instanceof StoreDown,
    isUncertain: (error) => error instanceof Uncertain,
    cooldownMs: 1000,
    schedule: timers.schedule,
    now: () => clock.time,
    ...extra
  })
  const submit = (...items: string[]): Tracked[] => items.map((item) => new Tracked(writer.submit(item)))
  return { writer, store, timers, clock, submit }
}

const outcomes = (tracked: Tracked[]): string[] => tracked.map((x) => x.outcome)
const callItems = (store: ReturnType<typeof controlledStore>): string[][] => store.calls.map((c) => c.items)

t.test('WriteRefused carries its reason and a message', async (t) => {
  const full = new WriteRefused('queue_full')
  t.ok(full instanceof Error)
  t.equal(full.name, 'WriteRefused')
  t.equal(full.reason, 'queue_full')
  t.equal(full.message, 'the write queue is full')
  t.equal(new WriteRefused('store_down').message, 'the store is unavailable')
  t.equal(new WriteRefused('closed').message, 'the writer is closed')
})

t.test('an idle writer waits maxDelayMs after the first item, then writes what has gathered', async (t) => {
  const { store, timers, submit, writer } = setup()
  const [a] = submit('a')
  t.equal(timers.all.length, 1, 'the first item starts the timer')
  t.equal(timers.all[0]?.ms, 5, 'for maxDelayMs')
  const [b] = submit('b')
  t.equal(timers.all.length, 1, 'later items share that timer')
  await settle()
  t.equal(store.calls.length, 0, 'nothing is written before the timer fires')
  t.same(writer.stats(), { queued: 2, batches: 0, written: 0, refused: 0, failed: 0 })
  t.equal(timers.fire(), 1)
  await settle()
  t.same(callItems(store), [['a', 'b']], 'one write for both')
  t.same(outcomes([a!, b!]), ['pending', 'pending'], 'nothing resolves before the write does')
  store.call(0).ok()
  await settle()
  t.same(outcomes([a!, b!]), ['resolved stored:a', 'resolved stored:b'])
  t.same(writer.stats(), { queued: 0, batches: 1, written: 2, refused: 0, failed: 0 })
})

t.test('a full batch is written at once and its timer cancelled', async (t) => {
  const { store, timers, submit } = setup({ maxBatch: 3 })
  const tracked = submit('a', 'b')
  t.equal(store.calls.length, 0, 'two of three: still waiting')
  tracked.push(...submit('c'))
  t.same(callItems(store), [['a', 'b', 'c']], 'the third item starts the write synchronously')
  t.equal(timers.all.length, 1)
  t.equal(timers.all[0]?.cancelled, true, 'the pending timer is cancelled')
  t.equal(timers.pending().length, 0)
  store.call(0).ok()
  await settle()
  t.same(outcomes(tracked), ['resolved stored:a', 'resolved stored:b', 'resolved stored:c'])
})

t.test('after a write the idle writer starts a fresh timer for the next item', async (t) => {
  const { store, timers, submit } = setup()
  const [a] = submit('a')
  timers.fire()
  store.call(0).ok()
  await settle()
  t.equal(a?.outcome, 'resolved stored:a')
  const [b] = submit('b')
  t.equal(timers.pending().length, 1, 'a new timer')
  t.equal(store.calls.length, 1, 'not written yet')
  timers.fire()
  store.call(1).ok()
  await settle()
  t.equal(b?.outcome, 'resolved stored:b')
  t.same(callItems(store), [['a'], ['b']])
})

t.test('items arriving during a write form the next batch, written right after it, in order', async (t) => {
  const { store, timers, submit, writer } = setup({ maxBatch: 3 })
  const first = submit('a', 'b', 'c')
  t.equal(store.calls.length, 1)
  const second = submit('d', 'e', 'f', 'g', 'h')
  await settle()
  t.equal(store.calls.length, 1, 'no second write while one is in flight, even with a full batch queued')
  t.equal(timers.pending().length, 0, 'and no timer: the end of the write starts the next one')
  t.equal(writer.stats().queued, 5)
  store.call(0).ok()
  await settle()
  t.same(callItems(store), [['a', 'b', 'c'], ['d', 'e', 'f']], 'the next batch, capped at maxBatch, in submission order')
  t.same(outcomes(first), ['resolved stored:a', 'resolved stored:b', 'resolved stored:c'])
  t.same(outcomes(second), ['pending', 'pending', 'pending', 'pending', 'pending'])
  t.equal(writer.stats().queued, 2)
  store.call(1).ok()
  await settle()
  t.same(callItems(store)[2], ['g', 'h'], 'the rest follow without waiting for a timer')
  t.equal(timers.all.length, 1, 'only the very first item ever scheduled a timer')
  store.call(2).ok()
  await settle()
  t.same(outcomes(second), ['resolved stored:d', 'resolved stored:e', 'resolved stored:f', 'resolved stored:g', 'resolved stored:h'])
  t.equal(store.maxInFlight(), 1, 'never two writes at once')
  t.same(writer.stats(), { queued: 0, batches: 3, written: 8, refused: 0, failed: 0 })
})

t.test('results map back to their submitters by position', async (t) => {
  const { store, timers, submit } = setup({ maxBatch: 10 })
  const tracked = submit('x', 'y', 'z')
  timers.fire()
  store.call(0).resolve(['first', 'second', 'third'])
  await settle()
  t.same(tracked.map((x) => x.value), ['first', 'second', 'third'])
})

t.test('many concurrent submitters: one write at a time, every item once, in order', async (t) => {
  const calls: string[][] = []
  let inFlight = 0
  let maxInFlight = 0
  const writer = createBatchWriter<string, string>({
    maxBatch: 4,
    maxDelayMs: 1,
    queueLimit: 1000,
    isUnavailable: () => false,
    isUncertain: () => false,
    schedule: (fn) => { const handle = setImmediate(fn); return () => { clearImmediate(handle) } },
    write: async (items) => {
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      calls.push([...items])
      // Finish after a varying number of turns, so submissions land at every stage.
      for (let i = 0; i < calls.length % 3 + 1; i++) await new Promise((resolve) => setImmediate(resolve))
      inFlight--
      return items.map(result)
    }
  })
  const items = Array.from({ length: 60 }, (_, i) => `m${i}`)
  const results: Array<Promise<string>> = []
  for (const [i, item] of items.entries()) {
    results.push(writer.submit(item))
    if (i % 7 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  t.same(await Promise.all(results), items.map(result), 'each submitter gets its own result')
  t.equal(maxInFlight, 1, 'never two writes at once')
  t.same(calls.flat(), items, 'every item written once, in submission order')
  t.ok(calls.every((batch) => batch.length >= 1 && batch.length <= 4), 'no batch beyond maxBatch')
  t.same(writer.stats(), { queued: 0, batches: calls.length, written: 60, refused: 0, failed: 0 })
})

t.test('queueLimit: submissions beyond it are refused with queue_full and never written', async (t) => {
  const { store, timers, submit, writer } = setup({ maxBatch: 10, queueLimit: 2 })
  const tracked = submit('a', 'b', 'c', 'd')
  await settle()
  t.same(outcomes(tracked), ['pending', 'pending', 'refused queue_full', 'refused queue_full'])
  t.equal(writer.stats().queued, 2)
  timers.fire()
  t.same(callItems(store), [['a', 'b']], 'the refused items are not written')
  const during = submit('e', 'f', 'g')
  await settle()
  t.same(outcomes(during), ['pending', 'pending', 'refused queue_full'], 'items in flight do not count against the limit')
  store.call(0).ok()
  await settle()
  store.call(1).ok()
  await settle()
  t.same(callItems(store), [['a', 'b'], ['e', 'f']])
  t.same(outcomes([...tracked, ...during]), [
    'resolved stored:a', 'resolved stored:b', 'refused queue_full', 'refused queue_full',
    'resolved stored:e', 'resolved stored:f', 'refused queue_full'
  ])
  t.same(writer.stats(), { queued: 0, batches: 2, written: 4, refused: 3, failed: 0 })
})

t.test('a store-down error fails its batch, refuses the queue behind it, and cools down', async (t) => {
  const { store, submit, writer, clock } = setup({ maxBatch: 2, cooldownMs: 1000 })
  const batch = submit('a', 'b')
  const behind = submit('c', 'd', 'e')
  t.equal(store.calls.length, 1)
  const down = new StoreDown('connection refused')
  store.call(0).reject(down)
  await settle()
  t.same(outcomes(batch), ['store down', 'store down'], 'the batch rejects with the write error')
  t.equal(batch[0]?.error, down, 'the very same error')
  t.equal(batch[1]?.error, down)
  t.same(outcomes(behind), ['refused store_down', 'refused store_down', 'refused store_down'], 'the queue is refused without a write')
  t.equal(store.calls.length, 1, 'nothing else was tried')
  t.same(writer.stats(), { queued: 0, batches: 1, written: 0, refused: 3, failed: 2 })

  clock.time += 999
  const early = submit('f')
  await settle()
  t.same(outcomes(early), ['refused store_down'], 'refused at once during the cooldown')
  t.equal(store.calls.length, 1)
  t.equal(writer.stats().queued, 0, 'the refused item is not queued')

  clock.time += 1
  const probe = submit('g', 'h')
  t.same(callItems(store), [['a', 'b'], ['g', 'h']], 'accepted again once the cooldown is over')
  store.call(1).ok()
  await settle()
  t.same(outcomes(probe), ['resolved stored:g', 'resolved stored:h'])
  t.same(writer.stats(), { queued: 0, batches: 2, written: 2, refused: 4, failed: 2 })
})

t.test('the cooldown defaults to one second and starts at the failure, not the submission', async (t) => {
  const { store, submit, timers, clock } = setup({ cooldownMs: undefined })
  submit('a')
  clock.time += 300
  timers.fire()
  clock.time += 200
  store.call(0).reject(new StoreDown())
  await settle()
  clock.time += 999
  const early = submit('b')
  await settle()
  t.same(outcomes(early), ['refused store_down'])
  clock.time += 1
  const later = submit('c')
  await settle()
  t.same(outcomes(later), ['pending'])
  t.equal(timers.pending().length, 1, 'queued normally, waiting for its timer')
})

t.test('a failed probe after the cooldown starts another cooldown', async (t) => {
  const { store, submit, timers, clock } = setup({ cooldownMs: 50 })
  submit('a')
  timers.fire()
  store.call(0).reject(new StoreDown())
  await settle()
  clock.time += 50
  const [probe] = submit('b')
  timers.fire()
  store.call(1).reject(new StoreDown())
  await settle()
  t.equal(probe?.outcome, 'store down')
  clock.time += 49
  const [refused] = submit('c')
  await settle()
  t.equal(refused?.outcome, 'refused store_down')
})

t.test('another error on a batch of several: each item is retried alone, only the bad one fails', async (t) => {
  const { store, submit, writer } = setup({ maxBatch: 3 })
  const tracked = submit('a', 'bad', 'c')
  const bad = new BadItem('violates a constraint')
  store.call(0).reject(new BadItem('the whole batch failed'))
  await settle()
  t.same(callItems(store), [['a', 'bad', 'c'], ['a']], 'the first item is retried alone')
  t.equal(store.maxInFlight(), 1)
  store.call(1).ok()
  await settle()
  t.equal(tracked[0]?.outcome, 'resolved stored:a', 'a good item resolves as soon as its own write does')
  t.same(callItems(store)[2], ['bad'])
  store.call(2).reject(bad)
  await settle()
  t.same(callItems(store)[3], ['c'])
  store.call(3).ok()
  await settle()
  t.same(outcomes(tracked), ['resolved stored:a', 'bad item', 'resolved stored:c'])
  t.equal(tracked[1]?.error, bad, 'the bad item rejects with the error of its own write')
  t.equal(store.calls.length, 4)
  t.equal(store.maxInFlight(), 1, 'retries are one at a time too')
  t.same(writer.stats(), { queued: 0, batches: 4, written: 2, refused: 0, failed: 1 })
})

t.test('items queued behind a batch that is being isolated wait for it, then go as one batch', async (t) => {
  const { store, submit } = setup({ maxBatch: 2 })
  const first = submit('a', 'bad')
  const behind = submit('c', 'd')
  store.call(0).reject(new BadItem())
  await settle()
  store.call(1).ok()
  await settle()
  store.call(2).reject(new BadItem())
  await settle()
  t.same(callItems(store), [['a', 'bad'], ['a'], ['bad'], ['c', 'd']])
  store.call(3).ok()
  await settle()
  t.same(outcomes([...first, ...behind]), ['resolved stored:a', 'bad item', 'resolved stored:c', 'resolved stored:d'])
})

t.test('another error on a single item rejects it without a retry', async (t) => {
  const { store, submit, timers, writer } = setup()
  const [only] = submit('bad')
  timers.fire()
  const bad = new BadItem()
  store.call(0).reject(bad)
  await settle()
  t.equal(only?.error, bad)
  t.equal(store.calls.length, 1)
  t.same(writer.stats(), { queued: 0, batches: 1, written: 0, refused: 0, failed: 1 })
  const next = submit('next')
  await settle()
  t.same(outcomes(next), ['pending'], 'no cooldown after an error that is not the store being down')
  t.equal(writer.stats().queued, 1)
})

t.test('a store-down error while isolating a bad item fails that item and refuses the queue', async (t) => {
  const { store, submit, writer } = setup({ maxBatch: 3 })
  const batch = submit('a', 'b', 'c')
  const behind = submit('d')
  store.call(0).reject(new BadItem())
  await settle()
  const down = new StoreDown()
  store.call(1).reject(down)
  await settle()
  t.equal(batch[0]?.error, down, 'the item whose write found the store down rejects with that error')
  t.same(outcomes(behind), ['refused store_down'], 'the queue behind the batch is refused')
  const late = submit('e')
  await settle()
  t.same(outcomes(late), ['refused store_down'], 'and new submissions during the cooldown')
  t.equal(writer.stats().queued, 0)
})

t.test('after a store-down error while isolating a bad item, the rest of that batch is refused instead of written one by one', async (t) => {
  // Batch [a, b, c] fails with a non-unavailable error; retrying `a` alone finds the store down.
  const { store, submit } = setup({ maxBatch: 3 })
  const batch = submit('a', 'b', 'c')
  store.call(0).reject(new BadItem())
  await settle()
  store.call(1).reject(new StoreDown())
  await settle()
  t.same(callItems(store), [['a', 'b', 'c'], ['a']], 'no write after the store was found down')
  t.same(outcomes(batch).slice(1), ['refused store_down', 'refused store_down'])
})

t.test('close with nothing queued resolves at once and refuses new items', async (t) => {
  const { store, submit, writer } = setup()
  let closed = false
  void writer.close().then(() => { closed = true })
  await settle()
  t.ok(closed, 'resolved')
  const late = submit('a')
  await settle()
  t.same(outcomes(late), ['refused closed'])
  t.equal(store.calls.length, 0)
  await t.rejects(writer.submit('b'), new WriteRefused('closed'))
  t.same(writer.stats(), { queued: 0, batches: 0, written: 0, refused: 2, failed: 0 })
})

t.test('close writes items waiting on the timer without waiting for it', async (t) => {
  const { store, timers, submit, writer } = setup({ maxBatch: 10 })
  const tracked = submit('a', 'b')
  let closed = false
  void writer.close().then(() => { closed = true })
  t.same(callItems(store), [['a', 'b']], 'written at once')
  t.equal(timers.pending().length, 0, 'the timer is cancelled')
  const late = submit('c')
  await settle()
  t.same(outcomes(late), ['refused closed'])
  t.notOk(closed, 'not resolved while the write is in flight')
  store.call(0).ok()
  await settle()
  t.ok(closed)
  t.same(outcomes(tracked), ['resolved stored:a', 'resolved stored:b'])
  t.equal(store.calls.length, 1)
})

t.test('close waits for the write in flight and everything queued behind it', async (t) => {
  const { store, submit, writer } = setup({ maxBatch: 2 })
  const tracked = submit('a', 'b', 'c', 'd', 'e')
  let closed = false
  void writer.close().then(() => { closed = true })
  t.equal(store.calls.length, 1, 'still one write at a time')
  store.call(0).ok()
  await settle()
  t.notOk(closed)
  store.call(1).ok()
  await settle()
  t.notOk(closed)
  store.call(2).ok()
  await settle()
  t.ok(closed, 'resolved once nothing is left')
  t.same(callItems(store), [['a', 'b'], ['c', 'd'], ['e']])
  t.same(outcomes(tracked), ['resolved stored:a', 'resolved stored:b', 'resolved stored:c', 'resolved stored:d', 'resolved stored:e'])
  t.equal(store.maxInFlight(), 1)
})

t.test('close with a write in flight and nothing queued waits for that write', async (t) => {
  const { store, submit, writer } = setup({ maxBatch: 1 })
  const [a] = submit('a')
  let closed = false
  void writer.close().then(() => { closed = true })
  await settle()
  t.notOk(closed)
  store.call(0).ok()
  await settle()
  t.ok(closed)
  t.equal(a?.outcome, 'resolved stored:a')
})

t.test('close resolves even when the last writes fail; a second close resolves too', async (t) => {
  const { store, submit, writer } = setup({ maxBatch: 1 })
  const tracked = submit('a', 'b')
  let closed = 0
  void writer.close().then(() => { closed++ })
  void writer.close().then(() => { closed++ })
  store.call(0).reject(new StoreDown())
  await settle()
  t.equal(closed, 2)
  t.same(outcomes(tracked), ['store down', 'refused store_down'])
  await writer.close()
})

t.test('closed takes precedence over the cooldown in the refusal reason', async (t) => {
  const { store, submit, timers, writer } = setup()
  submit('a')
  timers.fire()
  store.call(0).reject(new StoreDown())
  await settle()
  await writer.close()
  await t.rejects(writer.submit('b'), { name: 'WriteRefused', reason: 'closed' })
})

t.test('a write that may have committed is written again with the same batch id until the store answers', async (t) => {
  const { store, timers, submit, clock } = setup({ maxBatch: 2 })
  const batch = submit('a', 'b')
  const behind = submit('c')
  store.call(0).reject(new Uncertain())
  await settle()
  t.same(outcomes(batch), ['pending', 'pending'], 'never reported as failed: they may be stored')
  t.same(outcomes(behind), ['refused store_down'], 'what waited behind it was never sent, so it is refused')
  const during = submit('d')
  await settle()
  t.same(outcomes(during), ['refused store_down'], 'new items are refused while the store is down')
  t.equal(store.calls.length, 1, 'the retry waits for the cooldown')
  clock.time += 1000
  timers.fire()
  await settle()
  t.equal(store.calls.length, 2)
  t.same(store.call(1).items, ['a', 'b'])
  t.equal(store.call(1).batchId, store.call(0).batchId, 'same batch id, so the store recognises its own rows')
  store.call(1).reject(new Uncertain())
  await settle()
  clock.time += 1000
  timers.fire()
  await settle()
  store.call(2).resolve(['A', 'B'])
  await settle()
  t.same(batch.map((x) => x.value), ['A', 'B'], 'resolved with what the store reports once it answers')
  t.same(store.maxInFlight(), 1)
})

t.test('different batches get different batch ids', async (t) => {
  const { store, submit } = setup({ maxBatch: 1 })
  submit('a', 'b')
  store.call(0).ok()
  await settle()
  store.call(1).ok()
  await settle()
  t.not(store.call(0).batchId, store.call(1).batchId)
  t.match(store.call(0).batchId, /^[0-9]+$/)
})

t.test('after close, an uncertain batch is retried for closeRetryMs, then its items reject with the uncertain error', async (t) => {
  const { store, timers, submit, clock, writer } = setup({ maxBatch: 1, closeRetryMs: 2500 })
  const [item] = submit('a')
  let closed = false
  void writer.close().then(() => { closed = true })
  store.call(0).reject(new Uncertain())
  await settle()
  for (let i = 1; i <= 3; i++) {
    clock.time += 1000
    timers.fire()
    await settle()
    store.call(i).reject(new Uncertain())
    await settle()
  }
  t.equal(item?.outcome, 'rejected Error', 'given up once the close deadline passed')
  t.ok(item?.error instanceof Uncertain)
  t.ok(closed, 'close resolves')
})

t.test('after an uncertain attempt, a retry that cannot reach the store keeps the batch held', async (t) => {
  const { store, timers, submit, clock } = setup({ maxBatch: 1 })
  const [item] = submit('a')
  store.call(0).reject(new Uncertain())
  await settle()
  clock.time += 1000
  timers.fire()
  await settle()
  store.call(1).reject(new StoreDown())
  await settle()
  t.equal(item?.outcome, 'pending', 'not reported as failed: the first attempt may have committed')
  clock.time += 1000
  timers.fire()
  await settle()
  store.call(2).ok()
  await settle()
  t.equal(item?.outcome, 'resolved stored:a')
})
