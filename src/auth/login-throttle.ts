export interface LoginThrottleOptions {
  /** Failed logins allowed per key within the window before `retryAfter` says wait. */
  readonly maxFailures: number
  readonly windowMs: number
  /** Keys remembered at most; the oldest are forgotten first, so a spray of names cannot grow memory. */
  readonly maxKeys?: number
  readonly now?: () => number
}

/** Counts failed logins per key (address + username) in a fixed window. */
export interface LoginThrottle {
  /** Milliseconds to wait before another attempt for this key, or 0 if it may go ahead. */
  retryAfter (key: string): number
  recordFailure (key: string): void
  /** A successful login clears the key's failures. */
  reset (key: string): void
}

export function createLoginThrottle (options: LoginThrottleOptions): LoginThrottle {
  const now = options.now ?? Date.now
  const maxKeys = options.maxKeys ?? 100_000
  // Map iteration order is insertion order, which makes the first key the oldest window.
  const entries = new Map<string, { failures: number, resetAt: number }>()

  const current = (key: string): { failures: number, resetAt: number } | undefined => {
    const entry = entries.get(key)
    if (entry !== undefined && entry.resetAt <= now()) {
      entries.delete(key)
      return undefined
    }
    return entry
  }

  return {
    retryAfter (key) {
      const entry = current(key)
      return entry !== undefined && entry.failures >= options.maxFailures ? entry.resetAt - now() : 0
    },
    recordFailure (key) {
      const entry = current(key)
      if (entry !== undefined) {
        entry.failures++
        return
      }
      if (entries.size >= maxKeys) {
        const oldest = entries.keys().next().value
        if (oldest !== undefined) entries.delete(oldest)
      }
      entries.set(key, { failures: 1, resetAt: now() + options.windowMs })
    },
    reset (key) {
      entries.delete(key)
    }
  }
}
