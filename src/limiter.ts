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
      let woken = false
      let wake = (): void => {}
      const ready = new Promise<void>((resolve) => {
        wake = () => { woken = true; resolve() }
      })
      waiters.push(wake)
      // A slot given up before its turn leaves the queue instead of freeing a slot it never held.
      return { ready, done: once(() => { if (woken) release(); else waiters.splice(waiters.indexOf(wake), 1) }) }
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
