import type { Log } from '../logger.js'
import { encodeFrame } from '../protocol/codec.js'
import type { PresenceEvent } from '../protocol/frames.js'
import type { User } from '../protocol/resources.js'
import type { RoomEvent } from '../fanout/room-feed.js'
import type { Socket } from '../fanout/socket-state.js'
import { AppError } from '../errors.js'
import { createOutageLog } from '../outage-log.js'
import type { OnlineUser, PresenceChange, PresenceStore } from './presence-store.js'

export interface PresenceDeps {
  readonly store: PresenceStore
  /** Sends a frame that is not stored to the room's sockets except `except`, including sockets still joining it. */
  readonly broadcast: (roomId: string, event: RoomEvent, except: Socket | null) => void
  /**
   * Records that the user was seen now (users.last_seen_at); called when their first socket comes
   * and their last goes, and when a sweep finds them gone with a dead node (which could not).
   */
  readonly seen: (userId: string) => void
  readonly log: Log
}

/**
 * This node's side of presence: counts its own sockets per user (on the server and per room),
 * tells the store when the first arrives or the last goes, and announces to the room whoever
 * the store says came online or went offline. Several sockets of one user are one presence.
 * Every third of the store's lease it renews this node's lease (announcing online whatever the
 * store had to put back) and, half a period apart, sweeps dead nodes (announcing offline whatever
 * they left orphaned). Store failures never reach the callers of the void methods: the first of
 * an outage is logged as a warning, its end at info.
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
  /**
   * Stops renewing and sweeping, waits for the announcements under way, then removes this node's
   * presence from the store and announces who went offline with it. Resolves once those are
   * broadcast; never rejects (a store failure is logged, and the lease then runs out by itself).
   */
  close (): Promise<void>
  /** Users with a socket on this node, and the (room, user) pairs this node holds in the store. */
  stats (): { readonly users: number, readonly entries: number }
}

function presenceEvent (roomId: string, user: User, status: PresenceEvent['status']): RoomEvent {
  return { text: encodeFrame({ type: 'presence', room: roomId, userId: user.id, username: user.username, status }), userId: user.id }
}

function userOf (change: PresenceChange): User {
  return { id: change.userId, username: change.username }
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
  const { store, broadcast } = deps
  const users = new Map<string, number>()
  /** Usernames of the users with a socket here, for this node's own view while the store is away. */
  const names = new Map<string, string>()
  // Keyed by room and user id together: one small entry per (room, user) this node holds.
  const members = new Map<string, number>()
  const memberKey = (roomId: string, userId: string): string => `${roomId}\n${userId}`
  const health = createOutageLog({ log: deps.log, what: 'presence store' })

  /** A store call nobody waits for: its failure goes to the outage log; resolves with its result, or null if it failed. */
  const background = async <R>(call: Promise<R>): Promise<R | null> => {
    try {
      const result = await call
      health.succeeded()
      return result
    } catch (error) {
      health.failed(error)
      return null
    }
  }

  /** A read someone waits for: a store that is away is `unavailable`, not an internal error. */
  const answered = async <R>(call: Promise<R>): Promise<R> => {
    const result = await background(call)
    if (result === null) throw new AppError('unavailable', 'presence is not reachable right now; retry shortly')
    return result
  }

  /** Who has a socket in the room on this node: all a join can be told while the store is away. */
  const localOnline = (roomId: string): OnlineUser[] => {
    const online: OnlineUser[] = []
    for (const key of members.keys()) {
      const [room, userId = ''] = key.split('\n')
      const username = names.get(userId)
      if (room === roomId && username !== undefined) online.push({ userId, username })
    }
    return online
  }

  // A store promises its changes apply in call order, not that its answers arrive in it: each
  // (room, user)'s announcements wait for the one before, so a quick leave and re-join reads
  // offline, online, never the reverse. A touch or sweep may concern any (room, user): its
  // announcements wait for every one asked for before it, and every later one waits for them.
  const announcing = new Map<string, Promise<void>>()
  let barrier: Promise<void> | undefined
  const announce = (key: string, changed: Promise<boolean>, frame: () => RoomEvent, roomId: string, except: Socket | null): Promise<void> => {
    const before = [announcing.get(key), barrier].filter((p) => p !== undefined)
    const done = (before.length === 0 ? changed : Promise.all(before).then(async () => await changed))
      .then((yes) => { if (yes) broadcast(roomId, frame(), except) })
    const tail = done.catch(() => {})
    announcing.set(key, tail)
    void tail.then(() => { if (announcing.get(key) === tail) announcing.delete(key) })
    return done
  }
  const everyAnnouncement = async (): Promise<void> => { await Promise.all([barrier, ...announcing.values()]) }

  const wentOffline = (change: PresenceChange): void => {
    if (change.roomId !== null) broadcast(change.roomId, presenceEvent(change.roomId, userOf(change), 'offline'), null)
  }
  const cameOnline = (change: PresenceChange): void => {
    if (change.roomId !== null) broadcast(change.roomId, presenceEvent(change.roomId, userOf(change), 'online'), null)
  }

  /**
   * Runs a touch or a sweep (`call`, just made) and has `announceAll` announce its result in its
   * place: after every announcement asked for before the call, before every one asked for after.
   */
  const periodic = <R>(call: Promise<R>, announceAll: (result: R) => void): Promise<void> => {
    const prior = everyAnnouncement()
    const done = (async () => {
      const result = await background(call)
      await prior
      if (result !== null) announceAll(result)
    })().catch((error: unknown) => { deps.log.error({ err: error }, 'presence changes not announced') })
    barrier = done
    void done.then(() => { if (barrier === done) barrier = undefined })
    return done
  }
  const touch = async (): Promise<void> => {
    await periodic(store.touch(), ({ online, offline }) => {
      offline.forEach(wentOffline)
      online.forEach(cameOnline)
    })
  }
  const sweep = async (): Promise<void> => {
    await periodic(store.sweep(), (gone) => {
      for (const change of gone) {
        // The dead node could not record that its users were last seen about now.
        if (change.roomId === null) deps.seen(change.userId)
        else wentOffline(change)
      }
    })
  }

  // Touch and sweep alternate every half period, each skipped while its last run is under way.
  const running = new Set<() => Promise<void>>()
  let next = touch
  const ticking = setInterval(() => {
    const run = next
    next = next === touch ? sweep : touch
    if (running.has(run)) return
    running.add(run)
    void run().finally(() => running.delete(run))
  }, store.leaseMs / 6).unref()

  return {
    connected (user) {
      if (hold(users, user.id) > 1) return
      names.set(user.id, user.username)
      deps.seen(user.id)
      void background(store.connect({ userId: user.id, username: user.username }))
    },
    disconnected (user) {
      if (release(users, user.id) > 0) return
      names.delete(user.id)
      deps.seen(user.id)
      void background(store.disconnect(user.id))
    },
    async entered (roomId, user, ws) {
      const key = memberKey(roomId, user.id)
      if (hold(members, key) === 1) {
        // A store that is away announces nothing now (the join still succeeds, on this node's
        // own view); the store re-asserts the claim from its own copy once it is back.
        const joined = background(store.join(roomId, { userId: user.id, username: user.username })).then((first) => first === true)
        await announce(key, joined, () => presenceEvent(roomId, user, 'online'), roomId, ws)
      }
      return await background(store.online(roomId)) ?? localOnline(roomId)
    },
    exited (roomId, user) {
      const key = memberKey(roomId, user.id)
      if (release(members, key) > 0) return
      const leaving = store.leave(roomId, user.id)
      void background(leaving)
      // A failed leave announces nothing; `background` has logged it.
      announce(key, leaving, () => presenceEvent(roomId, user, 'offline'), roomId, null).catch(() => {})
    },
    online: async (roomId) => await answered(store.online(roomId)),
    isOnline: async (userId) => await answered(store.isOnline(userId)),
    stats: () => ({ users: users.size, entries: members.size }),
    async close () {
      clearInterval(ticking)
      await everyAnnouncement()
      const gone = await background(store.close())
      gone?.forEach(wentOffline)
    }
  }
}
