import type { Log } from '../logger.js'

/** Logs an outage of something called again and again, instead of each failed call. */
export interface FailureLog {
  /** A call failed: a warning with `error` if calls were succeeding until now (or none was made), else nothing. */
  failed (error: unknown): void
  /** A call succeeded: one info line if calls were failing until now, else nothing. */
  succeeded (): void
}

/** `what` names the thing in the log lines, e.g. 'presence store'. */
export function createFailureLog (log: Log, what: string): FailureLog {
  let failing = false
  return {
    failed (error) {
      if (failing) return
      failing = true
      log.warn({ err: error }, `${what} failing; quiet until it answers again`)
    },
    succeeded () {
      if (!failing) return
      failing = false
      log.info(`${what} answering again`)
    }
  }
}
