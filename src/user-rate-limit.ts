import type { RateState } from './fanout/socket-state.js'
import { createFrameLimit } from './gateway/rate-limit.js'

export interface UserRateLimitOptions {
  /** Tokens added per second (sustained requests/s per user). */
  readonly rate: number
  /** Bucket size: requests one user may make at once. */
  readonly burst: number
  /** Milliseconds; injected by unit tests. */
  readonly now?: () => number
}

export interface UserRateLimit {
  /** Takes a token from `userId`'s bucket: 0 when the request may go ahead, else whole seconds until one is back (for `Retry-After`). */
  take (userId: string): number
  /** Buckets held now. */
  readonly size: number
}

/** Idle buckets are looked for at most this often, so a tiny refill time does not sweep on every request. */
const MIN_SWEEP_MS = 1000

/**
 * A token bucket per user on this node, the socket's frame limit applied to a user's requests.
 * A bucket left alone until it is full again is dropped (a new one is the same), so memory follows
 * the users active in the last few seconds, not every user ever seen.
 */
export function createUserRateLimit (options: UserRateLimitOptions): UserRateLimit {
  const now = options.now ?? Date.now
  const limit = createFrameLimit({ rate: options.rate, burst: options.burst, maxStrikes: Infinity })
  const fullAfterMs = options.burst / options.rate * 1000
  const sweepEveryMs = Math.max(fullAfterMs, MIN_SWEEP_MS)
  const buckets = new Map<string, RateState>()
  let sweptAt = now()

  const sweep = (at: number): void => {
    if (at - sweptAt < sweepEveryMs) return
    sweptAt = at
    for (const [userId, state] of buckets) {
      if (at - state.refilledAt >= fullAfterMs) buckets.delete(userId)
    }
  }

  return {
    take (userId) {
      const at = now()
      sweep(at)
      let state = buckets.get(userId)
      if (state === undefined) {
        state = limit.initial(at)
        buckets.set(userId, state)
      }
      if (limit.take(state, 1, at) === 'ok') return 0
      return Math.max(1, Math.ceil((1 - state.tokens) / options.rate))
    },
    get size () { return buckets.size }
  }
}
