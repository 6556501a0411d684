import type { TemplatedApp } from 'uWebSockets.js'
import type { Bus, BusEnvelope } from '../bus/bus.js'
import { AppError } from '../errors.js'
import type { Log } from '../logger.js'
import type { Socket } from './socket-state.js'

/** The uWS topic a room's frames are published under. */
export function roomTopic (roomId: string): string {
  return `room:${roomId}`
}

/** A stored message's frame, encoded once. */
export interface FeedFrame { readonly seq: number, readonly text: string }

/** A frame that is not stored (typing, presence), encoded once, and the user it is about. */
export interface RoomEvent { readonly text: string, readonly userId: string }

/** What a room delivered while a socket was joining it, not yet subscribed. */
export interface JoinBuffer {
  readonly roomId: string
  readonly ws: Socket
  /**
   * The buffer holds every seq after this one that the room delivered since, contiguous; set as
   * soon as the room's position here is known (see `caughtUp`).
   */
  from: number | undefined
  /** Stored messages, in seq order. */
  readonly frames: FeedFrame[]
  /** Typing and presence frames, in the order they were sent. */
  readonly events: RoomEvent[]
  /** More arrived than a join may hold: the socket is too slow to be joined. */
  overflowed: boolean
}

/** Where the feed fills what the bus did not bring: the database, the record. */
export interface FeedSource {
  /** Committed messages of the room with `afterSeq` < seq ≤ `upTo`, ascending. */
  between (roomId: string, afterSeq: number, upTo: number): Promise<FeedFrame[]>
  /** Each room's last committed seq (rooms that no longer exist are left out). */
  lastSeqs (roomIds: readonly string[]): Promise<Map<string, number>>
  /**
   * Resolves once every message this node has committed so far was handed to `publish`, so a
   * repair never reads one of this node's messages before its sender's socket is known.
   */
  published (): Promise<void>
}

export interface RoomFeedDeps {
  readonly uws: TemplatedApp
  readonly bus: Bus
  readonly source: FeedSource
  /** A member was removed from a private room on some node: their sockets on this node leave it. */
  readonly revoked: (roomId: string, userId: string) => void
  /** Closes a socket whose room could not be brought up to date in time; the client resumes with afterSeq. */
  readonly resume: (ws: Socket) => void
  readonly log: Log
  /** How often every room with local sockets is compared with the database (a lost last message shows no jump); null: never, for a bus that cannot lose anything. */
  readonly checkEveryMs: number | null
  /** How long a gap may wait for the bus to bring what is missing before it is read from the database. */
  readonly gapGraceMs?: number
  /** How long a room may stay behind (its repairs failing) before its sockets are told to resume. */
  readonly repairDeadlineMs?: number
  /** How long a join waits for the bus to confirm its subscription before it goes on without (the room is then checked later). */
  readonly subscribeWaitMs?: number
}

export interface RoomFeedStats {
  /** Rooms with local sockets (joined or joining). */
  readonly rooms: number
  /** Repairs that read missing messages from the database, and the messages they delivered. */
  readonly repairs: number
  readonly repaired: number
  /** Checks of every local room against the database, and how many failed. */
  readonly checks: number
  readonly checkFailures: number
  /** Rooms given up on: their sockets were told to resume. */
  readonly resumed: number
  /** Frames handed to local sockets through room topics, one per receiving socket. */
  readonly sent: number
}

/**
 * The one way frames reach sockets, from this node or any other. Each room's messages are
 * delivered to its local sockets in seq order, each once: a seq that jumps, a bus that was
 * disconnected, or a check that finds the database ahead means a gap, filled from the database
 * before anything after it is delivered.
 */
export interface RoomFeed {
  /** A message this node committed: to the other nodes, and in order to the sockets here but `sender` (which gets an ack). */
  publish (roomId: string, frame: FeedFrame, sender: Socket | null): void
  /** A frame that is not stored (typing, presence): to every socket of the room on every node but `except`, at once. */
  readonly broadcast: (roomId: string, event: RoomEvent, except: Socket | null) => void
  /** `userId` was removed from the private room: their sockets on every node leave it. */
  revoke (roomId: string, userId: string): void
  /** Starts collecting the room's frames for a joining `ws`; taken back with `subscribe` or `closeBuffer`. */
  openBuffer (roomId: string, ws: Socket): JoinBuffer
  /** Resolves once the bus carries the room's news to this node (or could not now: the room is checked when the bus is back). */
  listening (roomId: string): Promise<void>
  /**
   * Resolves once the room's messages up to `seq` (known to be committed) were delivered here,
   * read from the database if the bus does not bring them in time; then every open buffer of the
   * room has its `from`. Rejects with `unavailable` if the room cannot be brought up to date.
   */
  caughtUp (roomId: string, seq: number): Promise<void>
  /** Ends a join: `ws` now receives the room live. Call it right after sending what the buffer held, in the same tick. */
  subscribe (buffer: JoinBuffer): void
  /** Ends a join that failed. */
  closeBuffer (buffer: JoinBuffer): void
  /** `ws` left the room (or closed). */
  unsubscribe (ws: Socket, roomId: string): void
  /** The last seq of the room delivered here, if the room has local sockets. */
  delivered (roomId: string): number | undefined
  stats (): RoomFeedStats
  /** Stops the checks; the bus is closed by its owner. */
  close (): void
}

/** Frames one join may hold while its replay is sent; past this the socket cannot keep up anyway. */
const MAX_BUFFERED = 10_000
/** Frames a room may hold back while a gap is filled; past this its sockets resume on their own. */
const MAX_HELD = 10_000
/** Messages read per repair query. */
const REPAIR_PAGE = 500
/** Rooms compared with the database per query. */
const CHECK_CHUNK = 1000
const RETRY_MS = 500

interface Held { readonly text: string, readonly sender: Socket | null }

interface Waiter { readonly seq: number, readonly resolve: () => void, readonly reject: (error: unknown) => void }

/** One room with local sockets. */
interface Track {
  readonly roomId: string
  readonly subscribers: Set<Socket>
  readonly buffers: Set<JoinBuffer>
  /** Last seq delivered here; undefined until the first join tells where the room stands. */
  delivered: number | undefined
  /** A seq known to be committed: everything up to it must be delivered. */
  wanted: number
  /** Messages that arrived ahead of a gap (or before `delivered` was known). */
  readonly held: Map<number, Held>
  waiters: Waiter[]
  /** When the room fell behind; null while it is up to date. */
  behindSince: number | null
  gapTimer: NodeJS.Timeout | null
  repairing: boolean
  readonly listening: Promise<void>
}

export function createRoomFeed (deps: RoomFeedDeps): RoomFeed {
  const { uws, bus, source, log } = deps
  const gapGraceMs = deps.gapGraceMs ?? 100
  const repairDeadlineMs = deps.repairDeadlineMs ?? 10_000
  const subscribeWaitMs = deps.subscribeWaitMs ?? 2000
  const tracks = new Map<string, Track>()
  let repairs = 0
  let repaired = 0
  let checks = 0
  let checkFailures = 0
  let resumed = 0
  let sent = 0
  let closed = false

  const send = (roomId: string, text: string, except: Socket | null): void => {
    const topic = roomTopic(roomId)
    // ws.publish skips the sender itself, but it delivers nothing from a socket that has never
    // subscribed to anything (a uWS quirk), and a closed socket cannot publish. A sender not
    // subscribed to this topic is not reached by app.publish anyway.
    // Counted from uWS's own subscriber count (a lookup, about 0.1 µs a publish, never a walk of the room).
    if (except !== null && except.getUserData().open && except.isSubscribed(topic)) {
      except.publish(topic, text)
      sent += uws.numSubscribers(topic) - 1
    } else {
      uws.publish(topic, text)
      sent += uws.numSubscribers(topic)
    }
  }

  /** The buffers of sockets joining the room, but `except`'s, that still have room. */
  const joining = function * (track: Track, except: Socket | null): Generator<JoinBuffer> {
    for (const buffer of track.buffers) {
      if (buffer.ws === except) continue
      if (buffer.frames.length + buffer.events.length < MAX_BUFFERED) yield buffer
      else buffer.overflowed = true
    }
  }

  const deliver = (track: Track, seq: number, held: Held): void => {
    track.delivered = seq
    send(track.roomId, held.text, held.sender)
    for (const buffer of joining(track, held.sender)) buffer.frames.push({ seq, text: held.text })
  }

  const placeBuffers = (track: Track): void => {
    for (const buffer of track.buffers) buffer.from ??= track.delivered
  }

  /** Delivers what is next in line, settles the waiters it satisfies, and notes whether a gap remains. */
  const advance = (track: Track): void => {
    const { held } = track
    if (track.delivered === undefined) return
    for (let next = held.get(track.delivered + 1); next !== undefined; next = held.get(track.delivered + 1)) {
      held.delete(track.delivered + 1)
      deliver(track, track.delivered + 1, next)
    }
    const delivered = track.delivered
    if (track.waiters.length > 0) {
      const waiting: Waiter[] = []
      for (const waiter of track.waiters) {
        if (waiter.seq <= delivered) waiter.resolve()
        else waiting.push(waiter)
      }
      track.waiters = waiting
    }
    if (held.size === 0 && track.wanted <= delivered) {
      track.behindSince = null
      if (track.gapTimer !== null) clearTimeout(track.gapTimer)
      track.gapTimer = null
      return
    }
    track.behindSince ??= Date.now()
    if (held.size > MAX_HELD) {
      giveUp(track, 'too many messages held back')
      return
    }
    if (!track.repairing && track.gapTimer === null) track.gapTimer = setTimeout(() => { void repair(track) }, gapGraceMs).unref()
  }

  /** The room cannot be brought up to date in time: its sockets resume by themselves (rejoin with afterSeq), never silently skipped. */
  const giveUp = (track: Track, why: string): void => {
    resumed++
    log.warn({ room: track.roomId, delivered: track.delivered, wanted: track.wanted, held: track.held.size, why }, 'room could not be brought up to date; its sockets must resume')
    for (const ws of track.subscribers) deps.resume(ws)
    const error = new AppError('unavailable', 'the room could not be brought up to date; retry shortly')
    for (const waiter of track.waiters) waiter.reject(error)
    track.waiters = []
    track.held.clear()
    track.delivered = undefined
    track.wanted = 0
    track.behindSince = null
  }

  /** Reads what the room is missing from the database, up to what is known to be committed, and delivers it in order. */
  const repair = async (track: Track): Promise<void> => {
    track.gapTimer = null
    if (track.repairing) return
    track.repairing = true
    repairs++
    try {
      await source.published()
      for (;;) {
        if (tracks.get(track.roomId) !== track || track.delivered === undefined) return
        // The first gap ends before the lowest message held back, or at what is known to be committed.
        let gapEnd = track.held.size > 0 ? Infinity : track.wanted
        for (const seq of track.held.keys()) gapEnd = Math.min(gapEnd, seq - 1)
        // Never past what is known to be committed: a later message of this node may not have
        // been handed to `publish` yet, and its sender must get an ack, not a copy.
        const upTo = Math.min(gapEnd, track.delivered + REPAIR_PAGE)
        if (upTo <= track.delivered) return
        const from = track.delivered
        const frames = await source.between(track.roomId, from, upTo)
        if (tracks.get(track.roomId) !== track || track.delivered !== from) continue
        for (const frame of frames) {
          const next = track.delivered + 1
          if (frame.seq < next) continue
          if (frame.seq > next) throw new Error(`seq ${next} of room ${track.roomId} is not in the database`)
          deliver(track, next, track.held.get(next) ?? { text: frame.text, sender: null })
          track.held.delete(next)
          repaired++
        }
        if (track.delivered === from) throw new Error(`seqs after ${from} of room ${track.roomId} are not in the database`)
        advance(track)
        if (track.behindSince === null) return
      }
    } catch (error) {
      if (tracks.get(track.roomId) !== track) return
      const behindFor = Date.now() - (track.behindSince ?? Date.now())
      if (behindFor >= repairDeadlineMs) {
        giveUp(track, error instanceof Error ? error.message : String(error))
        return
      }
      log.warn({ err: error, room: track.roomId }, 'room repair failed; retrying')
      track.gapTimer = setTimeout(() => { void repair(track) }, RETRY_MS).unref()
    } finally {
      track.repairing = false
    }
  }

  /** A message committed by some node: delivered in order, held back past a gap. */
  const arrived = (roomId: string, seq: number, held: Held): void => {
    const track = tracks.get(roomId)
    if (track === undefined) return
    if (track.delivered !== undefined && seq <= track.delivered) return
    if (!track.held.has(seq)) track.held.set(seq, held)
    advance(track)
  }

  const broadcastHere = (roomId: string, event: RoomEvent, except: Socket | null): void => {
    send(roomId, event.text, except)
    const track = tracks.get(roomId)
    if (track !== undefined) for (const buffer of joining(track, except)) buffer.events.push(event)
  }

  bus.onEnvelope((roomId, envelope: BusEnvelope) => {
    switch (envelope.kind) {
      case 'message':
        arrived(roomId, envelope.seq, { text: envelope.text, sender: null })
        return
      case 'event':
        broadcastHere(roomId, { text: envelope.text, userId: envelope.userId }, null)
        return
      case 'revoke':
        deps.revoked(roomId, envelope.userId)
    }
  })

  /** Compares every room with local sockets with the database; a room behind is repaired. */
  let checking: Promise<void> | null = null
  let checkAgain: NodeJS.Timeout | null = null
  const check = (): Promise<void> => {
    checking ??= (async () => {
      checks++
      try {
        const rooms = [...tracks.keys()]
        for (let i = 0; i < rooms.length; i += CHECK_CHUNK) {
          const lastSeqs = await source.lastSeqs(rooms.slice(i, i + CHECK_CHUNK))
          for (const [roomId, lastSeq] of lastSeqs) {
            const track = tracks.get(roomId)
            if (track === undefined || track.delivered === undefined || lastSeq <= track.wanted) continue
            track.wanted = lastSeq
            advance(track)
          }
        }
      } catch (error) {
        checkFailures++
        log.warn({ err: error }, 'rooms could not be checked against the database; retrying')
        if (!closed) checkAgain ??= setTimeout(() => { checkAgain = null; void check() }, RETRY_MS * 2).unref()
      } finally {
        checking = null
      }
    })()
    return checking
  }
  bus.onResync(() => { void check() })
  const periodic = deps.checkEveryMs === null ? null : setInterval(() => { void check() }, deps.checkEveryMs).unref()

  const track = (roomId: string): Track => {
    let found = tracks.get(roomId)
    if (found !== undefined) return found
    const subscribed = bus.subscribe(roomId)
    let timer: NodeJS.Timeout | undefined
    const listening = Promise.race([
      subscribed.catch(() => {}),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, subscribeWaitMs).unref() })
    ]).finally(() => { clearTimeout(timer) })
    found = {
      roomId,
      subscribers: new Set(),
      buffers: new Set(),
      delivered: undefined,
      wanted: 0,
      held: new Map(),
      waiters: [],
      behindSince: null,
      gapTimer: null,
      repairing: false,
      listening
    }
    tracks.set(roomId, found)
    return found
  }

  const untrackIfUnused = (track: Track): void => {
    if (track.subscribers.size > 0 || track.buffers.size > 0 || tracks.get(track.roomId) !== track) return
    tracks.delete(track.roomId)
    if (track.gapTimer !== null) clearTimeout(track.gapTimer)
    bus.unsubscribe(track.roomId)
  }

  return {
    publish (roomId, frame, sender) {
      bus.publish(roomId, { kind: 'message', seq: frame.seq, text: frame.text })
      arrived(roomId, frame.seq, { text: frame.text, sender })
    },
    broadcast (roomId, event, except) {
      bus.publish(roomId, { kind: 'event', userId: event.userId, text: event.text })
      broadcastHere(roomId, event, except)
    },
    revoke (roomId, userId) {
      bus.publish(roomId, { kind: 'revoke', userId })
      deps.revoked(roomId, userId)
    },
    openBuffer (roomId, ws) {
      const found = track(roomId)
      const buffer: JoinBuffer = { roomId, ws, from: found.delivered, frames: [], events: [], overflowed: false }
      found.buffers.add(buffer)
      return buffer
    },
    listening: async (roomId) => { await tracks.get(roomId)?.listening },
    async caughtUp (roomId, seq) {
      const found = tracks.get(roomId)
      if (found === undefined) throw new Error(`room ${roomId} is not being joined`)
      if (found.delivered === undefined) {
        // The first join tells where the room stands: what was committed up to `seq` is its
        // joiners' business (replay); only what follows is delivered live.
        found.delivered = seq
        for (const held of found.held.keys()) if (held <= seq) found.held.delete(held)
        placeBuffers(found)
        advance(found)
        return
      }
      placeBuffers(found)
      if (found.delivered >= seq) return
      await new Promise<void>((resolve, reject) => {
        found.waiters.push({ seq, resolve, reject })
        found.wanted = Math.max(found.wanted, seq)
        advance(found)
      })
    },
    subscribe (buffer) {
      const found = tracks.get(buffer.roomId)
      if (found === undefined) throw new Error(`room ${buffer.roomId} is not being joined`)
      found.buffers.delete(buffer)
      found.subscribers.add(buffer.ws)
      buffer.ws.subscribe(roomTopic(buffer.roomId))
      // The room was given up on after this join caught up: it resumes like the others.
      if (found.delivered === undefined) deps.resume(buffer.ws)
    },
    closeBuffer (buffer) {
      const found = tracks.get(buffer.roomId)
      if (found === undefined) return
      found.buffers.delete(buffer)
      untrackIfUnused(found)
    },
    unsubscribe (ws, roomId) {
      const found = tracks.get(roomId)
      if (found?.subscribers.delete(ws) !== true) return
      // A closed uWS socket throws on any call; uWS drops its subscriptions itself.
      if (ws.getUserData().open) ws.unsubscribe(roomTopic(roomId))
      untrackIfUnused(found)
    },
    delivered: (roomId) => tracks.get(roomId)?.delivered,
    stats: () => ({ rooms: tracks.size, repairs, repaired, checks, checkFailures, resumed, sent }),
    close () {
      closed = true
      if (periodic !== null) clearInterval(periodic)
      if (checkAgain !== null) clearTimeout(checkAgain)
      for (const found of tracks.values()) if (found.gapTimer !== null) clearTimeout(found.gapTimer)
    }
  }
}
