import type { Log } from '../logger.js'
import type { InsertOutcome, MessageDraft } from '../../db/repositories/messages.repository.js'
import { encodeFrame } from '../protocol/codec.js'
import type { AckEvent, MessageFrame } from '../protocol/frames.js'
import type { Outbox } from '../fanout/outbox.js'
import type { RoomFeed } from '../fanout/room-feed.js'
import type { Socket } from '../fanout/socket-state.js'
import { replyWithFailure } from './failures.js'
import type { BatchWriter } from './batch-writer.js'

export interface PipelineDeps {
  readonly writer: BatchWriter<MessageDraft, InsertOutcome>
  readonly feed: RoomFeed
  readonly outbox: Outbox
  readonly log: Log
}

/**
 * The message path after validation: group commit, then (only once committed) one encoded
 * `message` frame to the room and the `ack` to the sender. A repeat of a stored clientMsgId gets
 * the original ack and nothing is published.
 */
export interface MessagePipeline {
  /** Stores a validated `message` frame from `ws` and answers it (`ack` or `error`); never rejects for bad input or an unavailable store. */
  send (ws: Socket, frame: MessageFrame): Promise<void>
}

export function createPipeline (deps: PipelineDeps): MessagePipeline {
  const { writer, feed, outbox } = deps
  const send = async (ws: Socket, frame: MessageFrame): Promise<void> => {
    const { user } = ws.getUserData()
    const clientMsgId = frame.clientMsgId ?? null
    let outcome: InsertOutcome
    try {
      outcome = await writer.submit({ roomId: frame.room, userId: user.id, body: frame.body, clientMsgId })
    } catch (error) {
      replyWithFailure(ws, outbox, deps.log, error, frame.ref, 'message not stored')
      return
    }
    if (outcome.status === 'not_found') {
      outbox.error(ws, 'not_found', `room ${frame.room} not found`, frame.ref)
      return
    }
    if (outcome.status === 'forbidden') {
      outbox.error(ws, 'forbidden', 'this room is private and you are not a member', frame.ref)
      return
    }
    const createdAt = outcome.createdAt.toISOString()
    if (outcome.status === 'created') {
      const text = encodeFrame({
        type: 'message',
        id: outcome.id,
        room: frame.room,
        seq: outcome.seq,
        userId: user.id,
        username: user.username,
        body: frame.body,
        clientMsgId,
        createdAt
      })
      feed.publish(frame.room, { seq: outcome.seq, text }, ws)
    }
    const ack: AckEvent = { type: 'ack', room: frame.room, id: outcome.id, seq: outcome.seq, clientMsgId, createdAt }
    if (frame.ref !== undefined) ack.ref = frame.ref
    outbox.send(ws, ack)
  }
  return { send }
}
