import type { TemplatedApp } from 'uWebSockets.js'
import type { Socket, SocketState } from '../../src/fanout/socket-state.js'

/** A socket of the fake app: what uWS would have sent it, in order. */
export interface FakeSocket {
  readonly ws: Socket
  readonly state: SocketState
  /** Texts sent to it, by publish or send. */
  readonly received: string[]
}

/**
 * The part of a uWS app the room feed uses (topics, publish, a socket's own publish that skips
 * itself), in memory, so the feed can be tested without a listener.
 */
export interface FakeUws {
  readonly app: TemplatedApp
  socket (userId?: string): FakeSocket
}

export function createFakeUws (): FakeUws {
  const topics = new Map<string, Set<FakeSocket>>()
  const publish = (topic: string, text: string, except: FakeSocket | null): boolean => {
    for (const socket of topics.get(topic) ?? []) if (socket !== except && socket.state.open) socket.received.push(text)
    return true
  }
  const app = {
    publish: (topic: string, text: string) => publish(topic, text, null),
    numSubscribers: (topic: string) => topics.get(topic)?.size ?? 0
  } as unknown as TemplatedApp
  let users = 0
  return {
    app,
    socket (userId = String(++users)) {
      const state = {
        user: { id: userId, username: `user${userId}` },
        expiresAt: Number.MAX_SAFE_INTEGER,
        rooms: new Map(),
        open: true,
        onDrain: undefined,
        typing: undefined,
        tokens: 0,
        refilledAt: 0,
        strikes: 0
      } satisfies SocketState
      const own = new Set<string>()
      const fake: FakeSocket = {
        state,
        received: [],
        ws: {
          getUserData: () => state,
          isSubscribed: (topic: string) => own.has(topic),
          subscribe (topic: string) {
            if (!state.open) throw new Error('closed socket')
            own.add(topic)
            let set = topics.get(topic)
            if (set === undefined) topics.set(topic, set = new Set())
            set.add(fake)
            return true
          },
          unsubscribe (topic: string) {
            if (!state.open) throw new Error('closed socket')
            own.delete(topic)
            topics.get(topic)?.delete(fake)
            return true
          },
          publish (topic: string, text: string) {
            if (!state.open) throw new Error('closed socket')
            return publish(topic, text, fake)
          }
        } as unknown as Socket
      }
      return fake
    }
  }
}
