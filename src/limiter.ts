export interface Slot {
  /** Resolves when the slot may run. */
  readonly ready: Promise<void>
  /** Frees the slot; call exactly once, also on failure. */
  done (): void
}

/** Bounded concurrency with a bounded wait list: the caller learns at once when both are full. */
export interface Limiter {
  /** A slot, or null when `concurrency` are running and `queue` are already waiting. */
  tryAcquire (): Slot | null
  readonly running: number
  readonly waiting: number
}

export function createLimiter (concurrency: number, queue: number): Limiter {
  let running = 0
  const waiters: Array<() => void> = []

  const release = (): void => {
    const next = waiters.shift()
    if (next === undefined) running--
    else next()
  }

  return {
    tryAcquire () {
      if (running < concurrency) {
        running++
        return { ready: Promise.resolve(), done: once(release) }
      }
      if (waiters.length >= queue) return null
      return { ready: new Promise<void>((resolve) => waiters.push(resolve)), done: once(release) }
    },
    get running () { return running },
    get waiting () { return waiters.length }
  }
}

function once (fn: () => void): () => void {
  let called = false
  return () => {
    if (called) return
    called = true
    fn()
  }
}
