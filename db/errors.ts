/** SQLSTATE classes and codes that mean "the database cannot be reached right now", not "the query is wrong". */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300'])
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ENOENT'])
/** pg reports a lost or never-made connection only in its message. */
const CONNECTION_MESSAGES = [/Connection terminated/i, /timeout exceeded when trying to connect/i, /Client has encountered a connection error/i]

/** Whether `error` says the database is unreachable (down, restarting, overloaded), so a retry may succeed. */
export function isDatabaseUnavailable (error: unknown): boolean {
  if (!(error instanceof Error)) return false
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string' && (UNAVAILABLE_SQLSTATES.has(code) || code.startsWith('08') || NETWORK_CODES.has(code))) return true
  return CONNECTION_MESSAGES.some((pattern) => pattern.test(error.message))
}

/**
 * A write whose statement was sent but whose answer never came (the connection broke): it may or
 * may not have committed. Running it again with the same write id finds out.
 */
export class UncertainWriteError extends Error {
  constructor (cause: unknown) {
    super('the connection broke during a write; it may or may not have committed', { cause })
    this.name = 'UncertainWriteError'
  }
}

/** Deadlock and serialization failure: another transaction's doing; the whole statement is safe to run again. */
export const CONFLICT_SQLSTATES: ReadonlySet<string> = new Set(['40P01', '40001'])
const MAX_ATTEMPTS = 10

/** Runs `fn`, again (up to 10 times in all) while it fails with one of `retryable`'s SQLSTATEs. */
export async function retryOn<T> (retryable: ReadonlySet<string>, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn()
    } catch (error) {
      const code = (error as { code?: unknown }).code
      if (attempt >= MAX_ATTEMPTS || typeof code !== 'string' || !retryable.has(code)) throw error
    }
  }
}
