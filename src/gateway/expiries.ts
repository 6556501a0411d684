/**
 * Calls back for each item when its time comes, with one timer per distinct time instead of one
 * per item: socket expiries are tokens' `exp` (whole seconds), so the sockets opened within a
 * second share a timer and pay only a set entry each.
 */
export interface Expiries<T> {
  /** `expired(item)` runs at `at` (ms since the epoch), or now if that has passed, unless the item is `delete`d first. */
  add (item: T, at: number): void
  /** Takes back the `add` of `item` at `at`. */
  delete (item: T, at: number): void
}

/** setTimeout's longest delay; a later time is waited for in several steps. */
const MAX_TIMER_MS = 2_147_483_647

interface Due<T> {
  readonly items: Set<T>
  timer: NodeJS.Timeout
}

export function createExpiries<T> (expired: (item: T) => void, now: () => number = Date.now): Expiries<T> {
  const due = new Map<number, Due<T>>()

  const arm = (at: number): NodeJS.Timeout =>
    setTimeout(() => { fire(at) }, Math.min(at - now(), MAX_TIMER_MS)).unref()

  const fire = (at: number): void => {
    const entry = due.get(at)
    if (entry === undefined) return
    // A timer may run a little before the wall clock reaches `at`: never expire early.
    if (at > now()) {
      entry.timer = arm(at)
      return
    }
    due.delete(at)
    for (const item of entry.items) expired(item)
  }

  return {
    add (item, at) {
      if (at <= now()) {
        expired(item)
        return
      }
      const entry = due.get(at)
      if (entry !== undefined) entry.items.add(item)
      else due.set(at, { items: new Set([item]), timer: arm(at) })
    },
    delete (item, at) {
      const entry = due.get(at)
      if (entry?.items.delete(item) !== true || entry.items.size > 0) return
      clearTimeout(entry.timer)
      due.delete(at)
    }
  }
}
