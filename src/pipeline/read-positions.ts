import type { Log } from '../logger.js'
import type { ReadResult, ReadUpdate } from '../../db/repositories/reads.repository.js'
import { encodeFrame } from '../protocol/codec.js'
import type { ReadEvent, ReadFrame } from '../protocol/frames.js'
import type { User } from '../protocol/resources.js'
import type { Outbox } from '../fanout/outbox.js'
import type { RoomFeed } from '../fanout/room-feed.js'
import type { Socket } from '../fanout/socket-state.js'
import { createBatchWriter } from './batch-writer.js'
import { replyWithFailure } from './failures.js'

export interface ReadPositionsDeps {
  /** Stores a batch of positions atomically (clamped, never backwards); one result per update, null for an unknown room. */
  readonly store: (updates: ReadUpdate[]) => Promise<Array<ReadResult | null>>
  readonly isUnavailable: (error: unknown) => boolean
  readonly feed: Pick<RoomFeed, 'broadcast'>
  readonly outbox: Outbox
  readonly log: Log
}

/**
 * Read positions, written in batches like messages. A position that moved is announced to the
 * room as `receipt` (on every node) once stored; the reader's own socket gets the `read` reply
 * instead. The author's move by their own message is the group commit's, without a receipt.
 */
export interface ReadPositions {
  /** A `read` frame from `ws`, joined to the room: answers `read` (or `error`); never rejects for an unavailable store. */
  read (ws: Socket, frame: ReadFrame): Promise<void>
  /**
   * Moves `user`'s position in the room towards `seq` and resolves with the position once stored
   * (null: no such room). `from` is the socket that asked (it gets no receipt); null over REST,
   * where every socket of the room gets it. Rejects with the writer's errors.
   */
  move (user: User, roomId: string, seq: number, from: Socket | null): Promise<number | null>
  /** Refuses new reads and writes those already accepted. */
  close (): Promise<void>
}

/** Somebody waits on each read, but only for its reply: a few milliseconds of grouping are fine. */
const READ_WRITES = { maxBatch: 1000, maxDelayMs: 5, queueLimit: 50_000 }

interface PendingRead extends ReadUpdate {
  readonly username: string
  readonly from: Socket | null
}

export function createReadPositions (deps: ReadPositionsDeps): ReadPositions {
  const { feed, outbox } = deps
  const writer = createBatchWriter<PendingRead, number | null>({
    ...READ_WRITES,
    write: async (reads) => {
      const results = await deps.store(reads)
      reads.forEach((read, i) => {
        const result = results[i]
        if (result?.moved !== true) return
        const text = encodeFrame({ type: 'receipt', room: read.roomId, userId: read.userId, username: read.username, readSeq: result.readSeq })
        feed.broadcast(read.roomId, { text, userId: read.userId }, read.from)
      })
      return results.map((result) => result?.readSeq ?? null)
    },
    isUnavailable: deps.isUnavailable,
    // A read whose answer was lost is safe to send again (storing it twice changes nothing), so
    // the reader is told `unavailable` rather than held while the store is away.
    isUncertain: () => false
  })

  const move = async (user: User, roomId: string, seq: number, from: Socket | null): Promise<number | null> =>
    await writer.submit({ roomId, userId: user.id, username: user.username, seq, from })

  return {
    async read (ws, frame) {
      let readSeq: number | null
      try {
        readSeq = await move(ws.getUserData().user, frame.room, frame.seq, ws)
      } catch (error) {
        replyWithFailure(ws, outbox, deps.log, error, frame.ref, 'read position not stored')
        return
      }
      if (readSeq === null) {
        outbox.error(ws, 'not_found', `room ${frame.room} not found`, frame.ref)
        return
      }
      const reply: ReadEvent = { type: 'read', room: frame.room, readSeq }
      if (frame.ref !== undefined) reply.ref = frame.ref
      outbox.send(ws, reply)
    },
    move,
    close: async () => { await writer.close() }
  }
}
