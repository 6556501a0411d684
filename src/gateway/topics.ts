import type { TemplatedApp } from 'uWebSockets.js'
import type { Socket } from './connection.js'

/** The uWS topic a room's messages are published under. */
export function roomTopic (roomId: string): string {
  return `room:${roomId}`
}

/** A stored message's frame, encoded once. */
export interface FeedFrame { readonly seq: number, readonly text: string }

/** Live messages a joining socket has not been subscribed for yet. */
export interface JoinBuffer {
  readonly roomId: string
  readonly ws: Socket
  readonly frames: FeedFrame[]
  /** More arrived than a join may hold: the socket is too slow to be joined. */
  overflowed: boolean
}

export interface RoomFeed {
  /**
   * Sends a stored message to every socket in the room except `sender` (which gets an ack), and
   * appends it to the buffers of sockets still joining the room.
   */
  publish (roomId: string, frame: FeedFrame, sender: Socket | null): void
  /** The highest seq published to the room by this node since it started, if any. */
  lastPublished (roomId: string): number | undefined
  /** Starts collecting the room's messages for `ws`; taken back with `closeBuffer`. */
  openBuffer (roomId: string, ws: Socket): JoinBuffer
  closeBuffer (buffer: JoinBuffer): void
}

/** Live messages one join may hold while its replay is sent; past this the socket cannot keep up anyway. */
const MAX_BUFFERED = 10_000

export function createRoomFeed (uws: TemplatedApp): RoomFeed {
  const buffers = new Map<string, Set<JoinBuffer>>()
  const published = new Map<string, number>()
  return {
    publish (roomId, frame, sender) {
      const topic = roomTopic(roomId)
      published.set(roomId, Math.max(frame.seq, published.get(roomId) ?? 0))
      // ws.publish skips the sender itself, but it delivers nothing from a socket that has never
      // subscribed to anything (a uWS quirk), and a closed socket cannot publish. A sender not
      // subscribed to this topic is not reached by app.publish anyway.
      if (sender !== null && sender.getUserData().open && sender.isSubscribed(topic)) sender.publish(topic, frame.text)
      else uws.publish(topic, frame.text)
      const joining = buffers.get(roomId)
      if (joining === undefined) return
      for (const buffer of joining) {
        if (buffer.ws === sender) continue
        if (buffer.frames.length < MAX_BUFFERED) buffer.frames.push(frame)
        else buffer.overflowed = true
      }
    },
    lastPublished: (roomId) => published.get(roomId),
    openBuffer (roomId, ws) {
      const buffer: JoinBuffer = { roomId, ws, frames: [], overflowed: false }
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
