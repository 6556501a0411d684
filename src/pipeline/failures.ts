import type { Log } from '../logger.js'
import { isDatabaseUnavailable, UncertainWriteError } from '../../db/errors.js'
import { AppError } from '../errors.js'
import type { SocketErrorCode } from '../protocol/frames.js'
import type { Outbox } from '../fanout/outbox.js'
import type { Socket } from '../fanout/socket-state.js'
import { WriteRefused } from './batch-writer.js'

const SOCKET_CODES = new Set<string>(['bad_request', 'forbidden', 'not_found', 'rate_limited', 'unavailable', 'internal'])

/** Maps a failed frame onto an `error` frame; unexpected failures are logged and reported as `internal`. */
export function replyWithFailure (ws: Socket, outbox: Outbox, log: Log, error: unknown, ref: string | undefined, what: string): void {
  let code: SocketErrorCode = 'internal'
  let message = 'internal error'
  if (error instanceof AppError && SOCKET_CODES.has(error.code)) {
    code = error.code as SocketErrorCode
    message = error.message
  } else if (error instanceof WriteRefused) {
    code = 'unavailable'
    message = error.reason === 'closed' ? 'the server is shutting down; retry shortly' : `${error.message}; retry shortly`
  } else if (error instanceof UncertainWriteError) {
    // Never `unavailable` here: that promises the message was not stored, and it may have been.
    message = 'the database went away during the write and the server is stopping: re-send with the same clientMsgId'
    log.warn({ err: error }, what)
  } else if (isDatabaseUnavailable(error)) {
    code = 'unavailable'
    message = 'the database is not reachable; retry shortly'
  } else {
    log.error({ err: error }, what)
  }
  outbox.error(ws, code, message, ref)
}
