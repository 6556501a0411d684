export interface LoginThrottleOptions {
  /** Failed logins allowed per address and username within the window before attempts are refused. */
  readonly maxFailures: number
  /** Failed logins one address may make across all usernames (password spraying), as a multiple of `maxFailures`. */
  readonly addressFactor: number
  readonly windowMs: number
  /** Keys remembered at most per kind; the oldest are forgotten first, so a spray of names cannot grow memory. */
  readonly maxKeys?: number
  readonly now?: () => number
}

/** One admitted login attempt; settle it exactly once. */
export interface LoginAttempt {
  /** Wrong password or unknown user: counts as a failure. */
  failed (): void
  /** Right password: clears the username's failures. */
  succeeded (): void
  /** The password was never checked (server busy): counts for nothing. */
  abandoned (): void
}

export type Admission = { readonly admitted: true, readonly attempt: LoginAttempt } | { readonly admitted: false, readonly retryAfterMs: number }

/**
 * Limits failed logins per address + username and per address, in fixed windows. Attempts still
 * being checked count against the limit, so concurrent guesses cannot slip past it.
 */
export interface LoginThrottle {
  admit (address: string, username: string): Admission
}

interface Entry { failures: number, pending: number, resetAt: number }

/** A refusal caused only by attempts in flight lasts until they finish; tell clients to retry soon. */
const IN_FLIGHT_RETRY_MS = 1000

export function createLoginThrottle (options: LoginThrottleOptions): LoginThrottle {
  const now = options.now ?? Date.now
  const perUser = createCounter(options.maxFailures, options, now)
  const perAddress = createCounter(options.maxFailures * options.addressFactor, options, now)

  return {
    admit (address, username) {
      const userKey = `${address}|${username.toLowerCase()}`
      const wait = Math.max(perUser.wait(userKey), perAddress.wait(address))
      if (wait > 0) return { admitted: false, retryAfterMs: wait }
      const user = perUser.begin(userKey)
      const byAddress = perAddress.begin(address)
      let settled = false
      const settle = (fn: () => void): void => {
        if (settled) return
        settled = true
        fn()
      }
      return {
        admitted: true,
        attempt: {
          failed: () => settle(() => { user.end(true); byAddress.end(true) }),
          succeeded: () => settle(() => { user.clear(); byAddress.end(false) }),
          abandoned: () => settle(() => { user.end(false); byAddress.end(false) })
        }
      }
    }
  }
}

function createCounter (limit: number, options: LoginThrottleOptions, now: () => number): {
  wait: (key: string) => number
  begin: (key: string) => { end: (failed: boolean) => void, clear: () => void }
} {
  const maxKeys = options.maxKeys ?? 100_000
  // Map iteration order is insertion order, which makes the first key the oldest.
  const entries = new Map<string, Entry>()

  const current = (key: string): Entry | undefined => {
    const entry = entries.get(key)
    if (entry === undefined || entry.resetAt > now()) return entry
    if (entry.pending === 0) {
      entries.delete(key)
      return undefined
    }
    entry.failures = 0
    entry.resetAt = now() + options.windowMs
    return entry
  }

  const forgetIfIdle = (key: string, entry: Entry): void => {
    if (entry.failures === 0 && entry.pending === 0) entries.delete(key)
  }

  return {
    wait (key) {
      const entry = current(key)
      if (entry === undefined || entry.failures + entry.pending < limit) return 0
      return entry.failures >= limit ? entry.resetAt - now() : IN_FLIGHT_RETRY_MS
    },
    begin (key) {
      let entry = current(key)
      if (entry === undefined) {
        if (entries.size >= maxKeys) {
          const oldest = entries.keys().next().value
          if (oldest !== undefined) entries.delete(oldest)
        }
        entry = { failures: 0, pending: 0, resetAt: now() + options.windowMs }
        entries.set(key, entry)
      }
      const mine = entry
      mine.pending++
      return {
        end (failed) {
          // Refresh the window while this attempt still holds the entry, so a late failure lands in the new window.
          current(key)
          mine.pending--
          if (failed) mine.failures++
          forgetIfIdle(key, mine)
        },
        clear () {
          mine.pending--
          mine.failures = 0
          forgetIfIdle(key, mine)
        }
      }
    }
  }
}
