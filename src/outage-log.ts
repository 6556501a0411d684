import type { Log } from './logger.js'

/**
 * Logs an outage of something called again and again (the database, the presence store) instead
 * of each failed call: an operator needs when it started and when it ended, not one line per
 * request, write or poll in between.
 */
export interface OutageLog {
  /** A call failed: `<what> unreachable` at warn, with `error`, if calls were succeeding until now (or none was made); else nothing. */
  failed (error: unknown): void
  /** A call succeeded: `<what> reachable again` at info, with how long it was down, if calls were failing until now; else nothing. */
  succeeded (): void
  /** Stops rechecking and logs nothing more (the thing is being closed on purpose). */
  close (): void
}

export interface OutageLogOptions {
  readonly log: Log
  /** Names the thing in the log lines, e.g. 'database'. */
  readonly what: string
  /**
   * While it is down, `run` is called every `everyMs` until it resolves, so the end is logged even
   * when nothing else calls (no traffic, no `/ready` polls). Without it only `succeeded` ends it.
   */
  readonly recheck?: { readonly run: () => Promise<unknown>, readonly everyMs: number }
  readonly now?: () => number
}

export function createOutageLog (options: OutageLogOptions): OutageLog {
  const { log, what, recheck } = options
  const now = options.now ?? Date.now
  /** When the outage started; null while calls succeed. */
  let since: number | null = null
  let closed = false
  /** A recheck is scheduled or running: at most one at a time, however many failures are reported meanwhile. */
  let rechecking = false
  let recheckTimer: NodeJS.Timeout | null = null

  const scheduleRecheck = (): void => {
    if (recheck === undefined || rechecking || closed) return
    rechecking = true
    recheckTimer = setTimeout(() => {
      recheckTimer = null
      void recheck.run().then(succeeded, () => {}).finally(() => {
        rechecking = false
        if (since !== null) scheduleRecheck()
      })
    }, recheck.everyMs)
    // Nothing waits for it: it must not keep a stopping process alive.
    recheckTimer.unref()
  }

  function succeeded (): void {
    if (since === null || closed) return
    const downMs = Math.round(now() - since)
    since = null
    log.info({ downMs }, `${what} reachable again after ${(downMs / 1000).toFixed(1)} s`)
  }

  return {
    failed (error) {
      if (since !== null || closed) return
      since = now()
      log.warn({ err: error }, `${what} unreachable; quiet until it answers again`)
      scheduleRecheck()
    },
    succeeded,
    close () {
      closed = true
      if (recheckTimer !== null) clearTimeout(recheckTimer)
    }
  }
}
