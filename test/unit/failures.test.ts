import t from 'tap'
import { UncertainWriteError } from '../../db/errors.js'
import { AppError } from '../../src/errors.js'
import type { Outbox } from '../../src/fanout/outbox.js'
import type { Socket } from '../../src/fanout/socket-state.js'
import type { Log } from '../../src/logger.js'
import { WriteRefused } from '../../src/pipeline/batch-writer.js'
import { asFailure, replyWithFailure } from '../../src/pipeline/failures.js'

// One mapping of a failed write onto the contract, for the socket's `error` frame and REST alike:
// `unavailable` (with Retry-After) only when nothing was stored, so a client may retry safely.

function recordingLog (): { log: Log, levels: string[] } {
  const levels: string[] = []
  const at = (level: string) => () => { levels.push(level) }
  return { log: { warn: at('warn'), error: at('error'), info: at('info') } as unknown as Log, levels }
}

function refused (code: string): Error {
  return Object.assign(new Error(`connect ${code}`), { code })
}

t.test('refusals and an unreachable database: unavailable, retry after a second, nothing logged', async (t) => {
  const { log, levels } = recordingLog()
  for (const error of [new WriteRefused('queue_full'), new WriteRefused('store_down'), new WriteRefused('closed'), refused('ECONNREFUSED')]) {
    const failure = asFailure(error, log, 'message not stored')
    t.equal(failure.code, 'unavailable', error.message)
    t.equal(failure.retryAfter, 1, `${error.message}: Retry-After 1`)
    t.match(failure.message, /retry/, `${error.message}: says to retry`)
  }
  t.match(asFailure(new WriteRefused('closed'), log, '').message, /shutting down/)
  t.strictSame(levels, [])
})

t.test('an uncertain write is never unavailable: it may be stored', async (t) => {
  const { log, levels } = recordingLog()
  const failure = asFailure(new UncertainWriteError(refused('ECONNRESET')), log, 'message not stored')
  t.equal(failure.code, 'internal')
  t.equal(failure.statusCode, 500)
  t.equal(failure.retryAfter, undefined)
  t.match(failure.message, /same clientMsgId/, 'tells the client to re-send with the same clientMsgId')
  t.strictSame(levels, ['warn'])
})

t.test('an AppError passes through; anything else is logged and internal', async (t) => {
  const { log, levels } = recordingLog()
  const own = new AppError('forbidden', 'no')
  t.equal(asFailure(own, log, ''), own)
  const failure = asFailure(new Error('boom'), log, 'message not stored')
  t.equal(failure.code, 'internal')
  t.equal(failure.message, 'internal error', 'details stay in the log')
  t.strictSame(levels, ['error'])
})

t.test('on the socket: the same codes, and codes the socket does not know are internal', async (t) => {
  const { log } = recordingLog()
  const sent: unknown[] = []
  const outbox = { error: (_ws: Socket, code: string, message: string, ref: string | undefined) => { sent.push({ code, message, ref }) } } as unknown as Outbox
  const ws = {} as unknown as Socket
  replyWithFailure(ws, outbox, log, new WriteRefused('queue_full'), 'r1', '')
  replyWithFailure(ws, outbox, log, new AppError('conflict', 'taken'), 'r2', '')
  replyWithFailure(ws, outbox, log, new AppError('not_found', 'room x not found'), undefined, '')
  t.strictSame(sent, [
    { code: 'unavailable', message: 'the write queue is full; retry shortly', ref: 'r1' },
    { code: 'internal', message: 'internal error', ref: 'r2' },
    { code: 'not_found', message: 'room x not found', ref: undefined }
  ])
})
