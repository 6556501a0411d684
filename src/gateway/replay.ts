import type { Kysely } from 'kysely'
import { listMessages } from '../../db/repositories/messages.repository.js'
import type { Database } from '../../db/schema.js'
import { AppError } from '../errors.js'
import type { Outbox } from '../fanout/outbox.js'
import type { Joining, Socket } from '../fanout/socket-state.js'
import { encodeFrame } from '../protocol/codec.js'
import { toMessage } from '../protocol/resources.js'

export interface ReplayDeps {
  readonly db: Kysely<Database>
  readonly outbox: Outbox
  /** Bytes a replay lets queue on a socket before waiting for it to drain; well under `maxBackpressure`. */
  readonly highWater: number
}

/** Sends a joining socket the stored messages it missed. */
export interface Replay {
  /**
   * Sends stored messages after `afterSeq`, a page at a time, never filling the socket's buffer
   * past the high-water mark (that would close a healthy client as too slow); returns the last
   * seq sent (`afterSeq` if none), or null if the socket went away. Throws `forbidden` once the
   * join is revoked.
   */
  send (ws: Socket, roomId: string, afterSeq: number, joining: Joining): Promise<number | null>
  /** Stored messages sent to joining sockets. */
  stats (): { readonly replayed: number }
}

/** Stored messages read per replay query. */
const REPLAY_PAGE = 500

export const removedFromRoom = (): AppError => new AppError('forbidden', 'you were removed from this private room')

export function createReplay (deps: ReplayDeps): Replay {
  const { db, outbox, highWater } = deps
  let replayed = 0

  /** Resolves when the socket's send buffer is below the high-water mark (or it closed). */
  const drained = async (ws: Socket): Promise<void> => {
    const state = ws.getUserData()
    while (state.open && ws.getBufferedAmount() >= highWater) {
      await new Promise<void>((resolve) => { state.onDrain = resolve })
    }
  }

  return {
    async send (ws, roomId, afterSeq, joining) {
      let cursor = afterSeq
      for (;;) {
        const page = await listMessages(db, { roomId, after: cursor, limit: REPLAY_PAGE })
        let rows = page.messages
        while (rows.length > 0) {
          await drained(ws)
          if (!ws.getUserData().open) return null
          if (joining.revoked) throw removedFromRoom()
          let sent = 0
          ws.cork(() => {
            for (const row of rows) {
              if (sent > 0 && ws.getBufferedAmount() >= highWater) return
              if (!outbox.sendText(ws, encodeFrame({ type: 'message', ...toMessage(row) }))) return
              cursor = Number(row.seq)
              sent++
            }
          })
          replayed += sent
          if (!ws.getUserData().open) return null
          rows = rows.slice(sent)
        }
        if (!page.hasMore) return cursor
      }
    },
    stats: () => ({ replayed })
  }
}
