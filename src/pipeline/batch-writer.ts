import { randomBytes } from 'node:crypto'

/** Why the writer refused an item without trying to write it. */
export type RefusalReason = 'queue_full' | 'store_down' | 'closed'

/** The item was not written and will not be: safe to retry. */
export class WriteRefused extends Error {
  readonly reason: RefusalReason
  constructor (reason: RefusalReason) {
    super(reason === 'queue_full' ? 'the write queue is full' : reason === 'store_down' ? 'the store is unavailable' : 'the writer is closed')
    this.name = 'WriteRefused'
    this.reason = reason
  }
}

/** Runs `fn` after `ms` (0: after the current I/O phase); returns a cancel function. Injected by unit tests. */
export type Schedule = (fn: () => void, ms: number) => () => void

export interface BatchWriterOptions<In, Out> {
  /** Items per write; a full batch is written at once. */
  readonly maxBatch: number
  /** How long the first queued item waits for others before its batch is written anyway. */
  readonly maxDelayMs: number
  /** Items queued (not yet being written) beyond which `submit` is refused with `queue_full`. */
  readonly queueLimit: number
  /**
   * Writes a batch atomically; resolves with one result per item, in order. `batchId` is the same
   * for every attempt at one batch, so a store can recognise what an earlier attempt committed.
   */
  readonly write: (items: In[], batchId: string) => Promise<Out[]>
  /** Whether a write error means the store is unreachable rather than that the batch is bad. */
  readonly isUnavailable: (error: unknown) => boolean
  /**
   * Whether a write error leaves it unknown if the batch committed (the connection broke after the
   * write was sent). Such a batch is written again, every `cooldownMs`, until the store answers:
   * its items are never reported as failed, because they may be stored.
   */
  readonly isUncertain: (error: unknown) => boolean
  /** After close(), how long an uncertain batch is still retried before its items reject with the uncertain error. */
  readonly closeRetryMs?: number
  /** After an unavailable error, submissions are refused at once for this long; the next one probes again. */
  readonly cooldownMs?: number
  readonly schedule?: Schedule
  readonly now?: () => number
  /** A fresh batch id; by default a random positive 63-bit integer, in decimal. */
  readonly newBatchId?: () => string
}

export interface BatchWriterStats {
  readonly queued: number
  /** Writes attempted, including single-item retries that isolate a bad item. */
  readonly batches: number
  readonly written: number
  readonly refused: number
  readonly failed: number
}

export interface BatchWriter<In, Out> {
  /**
   * Queues an item for the next group commit and resolves with its result once the batch is
   * written. Rejects with `WriteRefused` when it was never attempted, or with the write's error.
   */
  submit (item: In): Promise<Out>
  /** Refuses new items, writes everything already queued, and resolves when nothing is in flight. */
  close (): Promise<void>
  /** Resolves once the write in flight now (if any) has been answered and its submitters told. */
  settled (): Promise<void>
  stats (): BatchWriterStats
}

interface Pending<In, Out> {
  readonly item: In
  readonly resolve: (out: Out) => void
  readonly reject: (error: unknown) => void
}

function randomBatchId (): string {
  return (randomBytes(8).readBigUInt64BE() >> 1n).toString()
}

const defaultSchedule: Schedule = (fn, ms) => {
  if (ms === 0) {
    const handle = setImmediate(fn)
    return () => clearImmediate(handle)
  }
  const handle = setTimeout(fn, ms)
  return () => clearTimeout(handle)
}

/**
 * Group commit: one write in flight at a time; items arriving meanwhile form the next batch,
 * written as soon as the current one finishes. An idle writer waits `maxDelayMs` after the first
 * item (or until `maxBatch` items) so concurrent senders share one transaction.
 */
export function createBatchWriter<In, Out> (options: BatchWriterOptions<In, Out>): BatchWriter<In, Out> {
  const schedule = options.schedule ?? defaultSchedule
  const now = options.now ?? Date.now
  const cooldownMs = options.cooldownMs ?? 1000
  const closeRetryMs = options.closeRetryMs ?? 10_000
  const newBatchId = options.newBatchId ?? randomBatchId
  let closedAt = 0
  let queue: Array<Pending<In, Out>> = []
  let cancelTimer: (() => void) | null = null
  let writing = false
  let closed = false
  let downUntil = 0
  let idleWaiters: Array<() => void> = []
  let batchWaiters: Array<() => void> = []
  let batches = 0
  let written = 0
  let refused = 0
  let failed = 0

  const start = (): void => {
    cancelTimer?.()
    cancelTimer = null
    if (writing || queue.length === 0) return
    writing = true
    void drain()
  }

  const drain = async (): Promise<void> => {
    while (queue.length > 0) {
      const batch = queue.slice(0, options.maxBatch)
      queue = queue.slice(batch.length)
      await writeBatch(batch)
      const waiters = batchWaiters
      batchWaiters = []
      for (const wake of waiters) wake()
    }
    writing = false
    const waiters = idleWaiters
    idleWaiters = []
    for (const wake of waiters) wake()
  }

  /** Refuses everything queued behind a failed write: it would fail the same way after the same timeout. */
  const storeDown = (): void => {
    downUntil = now() + cooldownMs
    const stranded = queue
    queue = []
    refused += stranded.length
    for (const p of stranded) p.reject(new WriteRefused('store_down'))
  }

  const writeBatch = async (batch: Array<Pending<In, Out>>): Promise<void> => {
    const batchId = newBatchId()
    // Once an attempt may have committed, a later attempt that cannot reach the store changes nothing.
    let uncertain = false
    for (;;) {
      batches++
      let results: Out[]
      try {
        results = await options.write(batch.map((p) => p.item), batchId)
      } catch (error) {
        uncertain ||= options.isUncertain(error)
        if (uncertain && (options.isUncertain(error) || options.isUnavailable(error))) {
          storeDown()
          if (!closed || now() - closedAt < closeRetryMs) {
            await new Promise<void>((resolve) => schedule(resolve, cooldownMs))
            continue
          }
          failed += batch.length
          for (const p of batch) p.reject(error)
          return
        }
        if (options.isUnavailable(error)) {
          storeDown()
          failed += batch.length
          for (const p of batch) p.reject(error)
          return
        }
        if (batch.length > 1) {
          // One bad item must not fail its neighbours: write them one by one to find it.
          for (const p of batch) {
            if (now() < downUntil) {
              refused++
              p.reject(new WriteRefused('store_down'))
            } else {
              await writeBatch([p])
            }
          }
          return
        }
        failed++
        batch[0]?.reject(error)
        return
      }
      written += batch.length
      batch.forEach((p, i) => { p.resolve(results[i] as Out) })
      return
    }
  }

  return {
    async submit (item) {
      if (closed || now() < downUntil || queue.length >= options.queueLimit) {
        refused++
        throw new WriteRefused(closed ? 'closed' : now() < downUntil ? 'store_down' : 'queue_full')
      }
      const result = new Promise<Out>((resolve, reject) => queue.push({ item, resolve, reject }))
      if (queue.length >= options.maxBatch) start()
      else if (!writing && cancelTimer === null) cancelTimer = schedule(start, options.maxDelayMs)
      return await result
    },
    async close () {
      if (!closed) closedAt = now()
      closed = true
      start()
      if (!writing) return
      await new Promise<void>((resolve) => idleWaiters.push(resolve))
    },
    async settled () {
      if (!writing) return
      await new Promise<void>((resolve) => batchWaiters.push(resolve))
    },
    stats: () => ({ queued: queue.length, batches, written, refused, failed })
  }
}
