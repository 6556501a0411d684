import type { Log } from '../logger.js'
import { isDatabaseUnavailable, UncertainWriteError } from '../../db/errors.js'
import { AppError } from '../errors.js'
import type { SocketErrorCode } from '../protocol/frames.js'
import type { Outbox } from '../fanout/outbox.js'
import type { Socket } from '../fanout/socket-state.js'
import { WriteRefused } from './batch-writer.js'

const SOCKET_CODES = new Set<string>(['bad_request', 'forbidden', 'not_found', 'rate_limited', 'unavailable', 'internal'])
/** Seconds a client is told to wait before retrying what the store refused (the writer's cooldown is one second). */
const RETRY_AFTER_SECONDS = 1

/**
 * A failed frame or request as the contract's error, for the socket and REST alike: `unavailable`
 * only when nothing was stored; unexpected failures are logged and reported as `internal`.
 */
export function asFailure (error: unknown, log: Log, what: string): AppError {
  if (error instanceof AppError) return error
  if (error instanceof WriteRefused) {
    return new AppError('unavailable', error.reason === 'closed' ? 'the server is shutting down; retry shortly' : `${error.message}; retry shortly`, RETRY_AFTER_SECONDS)
  }
  if (error instanceof UncertainWriteError) {
    log.warn({ err: error }, what)
    // Never `unavailable` here: that promises the message was not stored, and it may have been.
    return new AppError('internal', 'the database went away during the write and the server is stopping: re-send with the same clientMsgId')
  }
  if (isDatabaseUnavailable(error)) return new AppError('unavailable', 'the database is not reachable; retry shortly', RETRY_AFTER_SECONDS)
  log.error({ err: error }, what)
  return new AppError('internal', 'internal error')
}

/** Maps a failed frame onto an `error` frame (codes the socket does not know are `internal`). */
export function replyWithFailure (ws: Socket, outbox: Outbox, log: Log, error: unknown, ref: string | undefined, what: string): void {
  const failure = asFailure(error, log, what)
  if (SOCKET_CODES.has(failure.code)) outbox.error(ws, failure.code as SocketErrorCode, failure.message, ref)
  else outbox.error(ws, 'internal', 'internal error', ref)
}
