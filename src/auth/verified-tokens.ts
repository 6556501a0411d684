/**
 * Tokens whose signature and claims were checked, by their exact text, until they expire: a client
 * sends the same token with every request, and checking it once is enough. Only what passed is
 * kept; at most `size` tokens, the oldest making room for a new one.
 */
export interface VerifiedTokens<T> {
  /** What `token` was verified as, if it was and `now` (ms) is not past its expiry. */
  get (token: string, now: number): T | undefined
  /** `expiresAt`: ms since the epoch, the token's `exp`; it is good up to and including then. */
  set (token: string, value: T, expiresAt: number): void
  readonly size: number
}

export function createVerifiedTokens<T> (capacity: number): VerifiedTokens<T> {
  const entries = new Map<string, { readonly value: T, readonly expiresAt: number }>()
  return {
    get (token, now) {
      const entry = entries.get(token)
      if (entry === undefined) return undefined
      if (now <= entry.expiresAt) return entry.value
      entries.delete(token)
      return undefined
    },
    set (token, value, expiresAt) {
      // Map keeps insertion order: its first key is the oldest.
      if (entries.size >= capacity && !entries.has(token)) entries.delete(entries.keys().next().value as string)
      entries.set(token, { value, expiresAt })
    },
    get size () { return entries.size }
  }
}
