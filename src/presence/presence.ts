import type { Log } from '../logger.js'
import { encodeFrame } from '../protocol/codec.js'
import type { PresenceEvent } from '../protocol/frames.js'
import type { User } from '../protocol/resources.js'
import type { RoomEvent } from '../fanout/room-feed.js'
import type { Socket } from '../fanout/socket-state.js'
import type { OnlineUser, PresenceStore } from './presence-store.js'

export interface PresenceDeps {
  readonly store: PresenceStore
  /** Sends a frame that is not stored to the room's sockets except `except`, including sockets still joining it. */
  readonly broadcast: (roomId: string, event: RoomEvent, except: Socket | null) => void
  /** Records that the user was seen now (users.last_seen_at); called when their first socket comes and their last goes. */
  readonly seen: (userId: string) => void
  readonly log: Log
}

/**
 * This node's side of presence: counts its own sockets per user (on the server and per room),
 * tells the store when the first arrives or the last goes, and announces to the room whoever
 * the store says came online or went offline. Several sockets of one user are one presence.
 */
export interface Presence {
  /** A socket of `user` opened on this node. */
  connected (user: User): void
  /** A socket of `user` closed. */
  disconnected (user: User): void
  /**
   * The socket `ws` of `user` is joining the room: announces the user to the others there if this
   * is their first socket in it anywhere, then resolves with everyone online there, the user
   * included. Every call is matched by one `exited`, whatever happens to the join.
   */
  entered (roomId: string, user: User, ws: Socket): Promise<OnlineUser[]>
  /** A socket of `user` left the room, was removed from it, or closed. */
  exited (roomId: string, user: User): void
  online (roomId: string): Promise<OnlineUser[]>
  isOnline (userId: string): Promise<boolean>
  /** Stops renewing this node's lease. */
  close (): void
}

function presenceEvent (roomId: string, user: User, status: PresenceEvent['status']): RoomEvent {
  return { text: encodeFrame({ type: 'presence', room: roomId, userId: user.id, username: user.username, status }), userId: user.id }
}

/** Adds one to a count and returns the new count. */
function hold (counts: Map<string, number>, key: string): number {
  const n = (counts.get(key) ?? 0) + 1
  counts.set(key, n)
  return n
}

/** Takes one from a count (forgetting it at zero) and returns what is left. */
function release (counts: Map<string, number>, key: string): number {
  const n = (counts.get(key) ?? 1) - 1
  if (n > 0) counts.set(key, n)
  else counts.delete(key)
  return n
}

export function createPresence (deps: PresenceDeps): Presence {
  const { store, broadcast, log } = deps
  const users = new Map<string, number>()
  // Keyed by room and user id together: one small entry per (room, user) this node holds.
  const members = new Map<string, number>()
  const memberKey = (roomId: string, userId: string): string => `${roomId}\n${userId}`
  const warn = (what: string) => (error: unknown): void => { log.warn({ err: error }, what) }

  // A store promises its changes apply in call order, not that its answers arrive in it: each
  // (room, user)'s announcements wait for the one before, so a quick leave and re-join reads
  // offline, online, never the reverse.
  const announcing = new Map<string, Promise<void>>()
  const announce = (key: string, changed: Promise<boolean>, frame: () => RoomEvent, roomId: string, except: Socket | null): Promise<void> => {
    const previous = announcing.get(key)
    const done = (previous === undefined ? changed : previous.then(async () => await changed))
      .then((yes) => { if (yes) broadcast(roomId, frame(), except) })
    const tail = done.catch(() => {})
    announcing.set(key, tail)
    void tail.then(() => { if (announcing.get(key) === tail) announcing.delete(key) })
    return done
  }

  const touching = setInterval(() => { store.touch().catch(warn('presence lease not renewed')) }, store.leaseMs / 3).unref()

  return {
    connected (user) {
      if (hold(users, user.id) > 1) return
      deps.seen(user.id)
      store.connect({ userId: user.id, username: user.username }).catch(warn('presence not recorded'))
    },
    disconnected (user) {
      if (release(users, user.id) > 0) return
      deps.seen(user.id)
      store.disconnect(user.id).catch(warn('presence not cleared'))
    },
    async entered (roomId, user, ws) {
      const key = memberKey(roomId, user.id)
      if (hold(members, key) === 1) {
        await announce(key, store.join(roomId, { userId: user.id, username: user.username }), () => presenceEvent(roomId, user, 'online'), roomId, ws)
      }
      return await store.online(roomId)
    },
    exited (roomId, user) {
      const key = memberKey(roomId, user.id)
      if (release(members, key) > 0) return
      announce(key, store.leave(roomId, user.id), () => presenceEvent(roomId, user, 'offline'), roomId, null).catch(warn('presence not cleared'))
    },
    online: async (roomId) => await store.online(roomId),
    isOnline: async (userId) => await store.isOnline(userId),
    close () {
      clearInterval(touching)
    }
  }
}
