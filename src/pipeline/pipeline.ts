import type { Log } from '../logger.js'
import type { Meter } from '../metrics.js'
import type { InsertOutcome, MessageDraft } from '../../db/repositories/messages.repository.js'
import { encodeFrame } from '../protocol/codec.js'
import type { AckEvent, MessageFrame } from '../protocol/frames.js'
import type { Message, User } from '../protocol/resources.js'
import type { Outbox } from '../fanout/outbox.js'
import type { RoomFeed } from '../fanout/room-feed.js'
import type { Socket } from '../fanout/socket-state.js'
import { replyWithFailure } from './failures.js'
import type { BatchWriter } from './batch-writer.js'

export interface PipelineDeps {
  readonly writer: BatchWriter<MessageDraft, InsertOutcome>
  readonly feed: RoomFeed
  readonly outbox: Outbox
  readonly meter: Meter
  readonly log: Log
}

/**
 * The one message path, for sockets and REST alike: group commit, then (only once committed and
 * only when new) one encoded `message` frame to the room. A repeat of a stored clientMsgId is
 * answered with the original and nothing is published.
 */
export interface MessagePipeline {
  /**
   * Stores a validated message from `user` and publishes it to the room, skipping `sender` (the
   * socket that sent it, which gets an ack instead; null over REST: every socket gets it). Rejects
   * with the writer's errors (`WriteRefused`, `UncertainWriteError`, an unreachable database).
   */
  store (user: User, roomId: string, body: string, clientMsgId: string | null, sender: Socket | null): Promise<InsertOutcome>
  /** Stores a validated `message` frame from `ws` and answers it (`ack` or `error`); never rejects for bad input or an unavailable store. */
  send (ws: Socket, frame: MessageFrame): Promise<void>
  /** Messages stored (not repeats), from sockets and REST. */
  stats (): { readonly stored: number }
}

/** The message `user` just stored, as the API shows it: what the room's sockets get, and a REST sender. */
export function createdMessage (user: User, roomId: string, body: string, clientMsgId: string | null,
  stored: { readonly id: string, readonly seq: number, readonly createdAt: Date }): Message {
  return { id: stored.id, room: roomId, seq: stored.seq, userId: user.id, username: user.username, body, clientMsgId, createdAt: stored.createdAt.toISOString() }
}

export function createPipeline (deps: PipelineDeps): MessagePipeline {
  const { writer, feed, outbox, meter } = deps
  let stored = 0
  const store = async (user: User, roomId: string, body: string, clientMsgId: string | null, sender: Socket | null): Promise<InsertOutcome> => {
    const outcome = await writer.submit({ roomId, userId: user.id, body, clientMsgId })
    if (outcome.status === 'created') {
      stored++
      const text = encodeFrame({ type: 'message', ...createdMessage(user, roomId, body, clientMsgId, outcome) })
      feed.publish(roomId, { seq: outcome.seq, text }, sender)
    }
    return outcome
  }
  const send = async (ws: Socket, frame: MessageFrame): Promise<void> => {
    // Called in the turn the frame arrived in (decoded, nothing awaited yet): the ack's latency starts here.
    const received = performance.now()
    const clientMsgId = frame.clientMsgId ?? null
    let outcome: InsertOutcome
    try {
      outcome = await store(ws.getUserData().user, frame.room, frame.body, clientMsgId, ws)
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
    const ack: AckEvent = { type: 'ack', room: frame.room, id: outcome.id, seq: outcome.seq, clientMsgId, createdAt: outcome.createdAt.toISOString() }
    if (frame.ref !== undefined) ack.ref = frame.ref
    if (outbox.send(ws, ack)) meter.acked('socket', (performance.now() - received) / 1000)
  }
  return { store, send, stats: () => ({ stored }) }
}
