import type { Kysely } from 'kysely'
import type { Log } from '../logger.js'
import type { Database } from '../../db/schema.js'
import type { JoinFrame, LeaveFrame } from '../protocol/frames.js'
import { readableRoom } from '../room-access.js'
import type { Outbox } from '../fanout/outbox.js'
import type { Joining, Socket, SocketState } from '../fanout/socket-state.js'
import { replyWithFailure } from '../pipeline/failures.js'
import type { Presence } from '../presence/presence.js'
import type { OnlineUser } from '../presence/presence-store.js'
import type { RoomFeed } from '../fanout/room-feed.js'
import { removedFromRoom, type Replay } from './replay.js'
import type { Typing } from './typing.js'

export interface MembershipDeps {
  readonly db: Kysely<Database>
  readonly feed: RoomFeed
  readonly presence: Presence
  readonly typing: Typing
  readonly outbox: Outbox
  readonly replay: Replay
  readonly log: Log
}

/** `join` (with replay) and `leave`; one of them at a time per socket and room. */
export interface Membership {
  join (ws: Socket, frame: JoinFrame): Promise<void>
  leave (ws: Socket, frame: LeaveFrame): Promise<void>
  /** The socket's user lost access to the room: stop its live messages and tell the socket (`left`, reason `removed`; a join still in progress answers `forbidden`). */
  revoke (ws: Socket, roomId: string): void
  /** A socket closed: it leaves its rooms (presence, typing). */
  closed (ws: Socket): void
  /** Joins completed (`joined` sent), and the stored messages their replays sent. */
  stats (): { readonly joins: number, readonly replayed: number }
}

/** Rooms one socket may be in at once: each costs a subscription and a presence entry. */
export const MAX_ROOMS_PER_SOCKET = 500

export function createMembership (deps: MembershipDeps): Membership {
  const { db, feed, presence, typing, outbox } = deps
  let joins = 0

  /** The socket is out of a room it was in: it stops typing there and no longer counts as present. */
  const departed = (ws: Socket, roomId: string): void => {
    typing.stop(ws, roomId)
    presence.exited(roomId, ws.getUserData().user)
  }

  /**
   * The join of this room in progress, if any. Callers wait it out in a loop and act right after
   * the check that found none, so joins and leaves of one room apply one at a time, in order.
   */
  const inProgress = (state: SocketState, roomId: string): Promise<void> | null => {
    const phase = state.rooms.get(roomId)
    return phase === undefined || phase === 'joined' ? null : phase.done
  }

  const join = async (ws: Socket, frame: JoinFrame, joining: Joining): Promise<void> => {
    const state = ws.getUserData()
    const { room: roomId, ref } = frame
    // Live messages are collected from before the room is read, so none falls between the
    // stored ones and the subscription: whatever the reads miss is delivered after this point.
    const buffer = feed.openBuffer(roomId, ws)
    let afterSeq = frame.afterSeq
    const rejoin = state.rooms.get(roomId) === 'joined'
    // Whether the socket counts in the room's presence; undone below unless the join completes.
    let present = rejoin
    if (rejoin) {
      // A re-join keeps its presence: the user never left.
      feed.unsubscribe(ws, roomId)
      // Re-joining without afterSeq continues the subscription it replaces: it has had every
      // message delivered so far, so whatever comes after that is replayed.
      afterSeq ??= feed.delivered(roomId)
    }
    state.rooms.set(roomId, joining)
    try {
      // Whatever is committed after the room is read then reaches this node.
      await feed.listening(roomId)
      const access = await readableRoom(db, roomId, state.user.id)
      const lastSeq = Number(access.room.last_seq)
      let last = afterSeq === undefined ? lastSeq : Math.min(afterSeq, lastSeq)
      if (afterSeq !== undefined && last < lastSeq) {
        const replayed = await deps.replay.send(ws, roomId, last, joining)
        if (replayed === null) return
        last = replayed
      }
      // The handoff from stored to live: once the feed has delivered up to `last` here (from any
      // node), the buffer holds every seq after its `from`, so nothing between is lost or doubled.
      for (;;) {
        await feed.caughtUp(roomId, last)
        const from = buffer.from ?? last
        if (from <= last) break
        // The feed was already past the join's read (another join placed it): a join from now
        // starts there; one resuming after a seq gets the stretch between from the database.
        if (afterSeq === undefined) {
          last = from
          break
        }
        const replayed = await deps.replay.send(ws, roomId, last, joining)
        if (replayed === null) return
        last = replayed
      }
      if (!state.open) return
      let online: OnlineUser[]
      if (rejoin) {
        online = await presence.online(roomId)
      } else {
        present = true
        online = await presence.entered(roomId, state.user, ws)
      }
      if (!state.open) return
      if (joining.revoked) throw removedFromRoom()
      if (buffer.overflowed) {
        outbox.closeSlow(ws)
        return
      }
      ws.cork(() => {
        for (const live of buffer.frames) {
          if (live.seq <= last) continue
          if (!outbox.sendText(ws, live.text)) return
          last = live.seq
        }
        feed.subscribe(buffer)
        state.rooms.set(roomId, 'joined')
        joins++
        outbox.send(ws, { type: 'joined', room: roomId, lastSeq: Math.max(last, lastSeq), online, readSeq: access.readSeq, ...(ref === undefined ? {} : { ref }) })
        // Typing and presence sent while the socket was joining come after the `online` snapshot:
        // applied on top of it, in order, they leave the client with the current state. Those
        // about its own user are stale (it is online now) or its own typing elsewhere: skipped.
        for (const event of buffer.events) {
          if (event.userId !== state.user.id && !outbox.sendText(ws, event.text)) return
        }
      })
    } catch (error) {
      replyWithFailure(ws, outbox, deps.log, error, ref, 'join failed')
    } finally {
      feed.closeBuffer(buffer)
      if (state.rooms.get(roomId) === joining) {
        state.rooms.delete(roomId)
        if (present) departed(ws, roomId)
      }
    }
  }

  return {
    async join (ws, frame) {
      const state = ws.getUserData()
      for (let wait = inProgress(state, frame.room); wait !== null; wait = inProgress(state, frame.room)) await wait
      if (!state.open) return
      if (!state.rooms.has(frame.room) && state.rooms.size >= MAX_ROOMS_PER_SOCKET) {
        outbox.error(ws, 'forbidden', `a socket may be in at most ${MAX_ROOMS_PER_SOCKET} rooms; leave one first`, frame.ref)
        return
      }
      let finish = (): void => {}
      const joining: Joining = { done: new Promise<void>((resolve) => { finish = resolve }), revoked: false }
      try {
        await join(ws, frame, joining)
      } finally {
        finish()
      }
    },
    async leave (ws, frame) {
      const state = ws.getUserData()
      for (let wait = inProgress(state, frame.room); wait !== null; wait = inProgress(state, frame.room)) await wait
      if (!state.open) return
      if (state.rooms.get(frame.room) === 'joined') {
        feed.unsubscribe(ws, frame.room)
        state.rooms.delete(frame.room)
        departed(ws, frame.room)
      }
      outbox.send(ws, frame.ref === undefined ? { type: 'left', room: frame.room } : { type: 'left', room: frame.room, ref: frame.ref })
    },
    revoke (ws, roomId) {
      const state = ws.getUserData()
      const phase = state.rooms.get(roomId)
      if (!state.open || phase === undefined) return
      if (phase !== 'joined') {
        // Its join checked access before the removal; it answers `forbidden` instead of completing.
        phase.revoked = true
        return
      }
      feed.unsubscribe(ws, roomId)
      state.rooms.delete(roomId)
      departed(ws, roomId)
      outbox.send(ws, { type: 'left', room: roomId, reason: 'removed' })
    },
    closed (ws) {
      const state = ws.getUserData()
      // Rooms still joining are let go by their join, which sees the socket closed.
      for (const [roomId, phase] of state.rooms) {
        if (phase !== 'joined') continue
        feed.unsubscribe(ws, roomId)
        presence.exited(roomId, state.user)
      }
      typing.closed(ws)
      state.onDrain?.()
    },
    stats: () => ({ joins, replayed: deps.replay.stats().replayed })
  }
}
