import type { TemplatedApp } from 'uWebSockets.js'
import type { Socket } from './socket-state.js'

/** The uWS topic a room's frames are published under. */
export function roomTopic (roomId: string): string {
  return `room:${roomId}`
}

/** A stored message's frame, encoded once. */
export interface FeedFrame { readonly seq: number, readonly text: string }

/** A frame that is not stored (typing, presence), encoded once, and the user it is about. */
export interface RoomEvent { readonly text: string, readonly userId: string }

/** What a room sent while a socket was joining it, not yet subscribed. */
export interface JoinBuffer {
  readonly roomId: string
  readonly ws: Socket
  /** Stored messages, in seq order. */
  readonly frames: FeedFrame[]
  /** Typing and presence frames, in the order they were sent. */
  readonly events: RoomEvent[]
  /** More arrived than a join may hold: the socket is too slow to be joined. */
  overflowed: boolean
}

export interface RoomFeed {
  /**
   * Sends a stored message to every socket in the room except `sender` (which gets an ack), and
   * appends it to the buffers of sockets still joining the room.
   */
  publish (roomId: string, frame: FeedFrame, sender: Socket | null): void
  /** Sends a frame that is not stored (typing, presence) the same way, to everyone but `except`. */
  broadcast (roomId: string, event: RoomEvent, except: Socket | null): void
  /** The highest seq published to the room by this node since it started, if any. */
  lastPublished (roomId: string): number | undefined
  /** Starts collecting the room's frames for `ws`; taken back with `closeBuffer`. */
  openBuffer (roomId: string, ws: Socket): JoinBuffer
  closeBuffer (buffer: JoinBuffer): void
}

/** Frames one join may hold while its replay is sent; past this the socket cannot keep up anyway. */
const MAX_BUFFERED = 10_000

export function createRoomFeed (uws: TemplatedApp): RoomFeed {
  const buffers = new Map<string, Set<JoinBuffer>>()
  const published = new Map<string, number>()

  const send = (roomId: string, text: string, except: Socket | null): void => {
    const topic = roomTopic(roomId)
    // ws.publish skips the sender itself, but it delivers nothing from a socket that has never
    // subscribed to anything (a uWS quirk), and a closed socket cannot publish. A sender not
    // subscribed to this topic is not reached by app.publish anyway.
    if (except !== null && except.getUserData().open && except.isSubscribed(topic)) except.publish(topic, text)
    else uws.publish(topic, text)
  }

  /** The buffers of sockets joining the room, but `except`'s, that still have room. */
  const joining = function * (set: Set<JoinBuffer>, except: Socket | null): Generator<JoinBuffer> {
    for (const buffer of set) {
      if (buffer.ws === except) continue
      if (buffer.frames.length + buffer.events.length < MAX_BUFFERED) yield buffer
      else buffer.overflowed = true
    }
  }

  return {
    publish (roomId, frame, sender) {
      published.set(roomId, Math.max(frame.seq, published.get(roomId) ?? 0))
      send(roomId, frame.text, sender)
      const set = buffers.get(roomId)
      if (set !== undefined) for (const buffer of joining(set, sender)) buffer.frames.push(frame)
    },
    broadcast (roomId, event, except) {
      send(roomId, event.text, except)
      const set = buffers.get(roomId)
      if (set !== undefined) for (const buffer of joining(set, except)) buffer.events.push(event)
    },
    lastPublished: (roomId) => published.get(roomId),
    openBuffer (roomId, ws) {
      const buffer: JoinBuffer = { roomId, ws, frames: [], events: [], overflowed: false }
      let set = buffers.get(roomId)
      if (set === undefined) buffers.set(roomId, set = new Set())
      set.add(buffer)
      return buffer
    },
    closeBuffer (buffer) {
      const set = buffers.get(buffer.roomId)
      set?.delete(buffer)
      if (set?.size === 0) buffers.delete(buffer.roomId)
    }
  }
}
