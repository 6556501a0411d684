import { randomUUID } from 'node:crypto'
import type { Bus, BusEnvelope, BusProblem, BusStats } from './bus.js'
import { assertNodeId, encodeEnvelope, foreignEnvelope } from './envelope.js'

/** Faults a test injects into one node of a memory network. */
export interface MemoryBusControls {
  /** Cuts the node off: it neither sends nor receives (even what was already on its way), and `problem()` says so. */
  disconnect (): void
  /** Restores the node's subscriptions, then calls its `onResync` handler (asynchronously). */
  reconnect (): void
}

export type MemoryBus = Bus & MemoryBusControls

/** Envelopes for which it returns true are lost on the way, silently, as on a real network. */
export type DropPredicate = (roomId: string, envelope: BusEnvelope) => boolean

/** Nodes in one process sharing a hub: one node alone (a single-node server), or several in tests. */
export interface MemoryBusNetwork {
  /** A new node on this network; its id must be unique on it (default: a random UUID). */
  node (nodeId?: string): MemoryBus
  /** Loses every envelope matching the predicate from now on; null stops losing them. */
  dropWhere (predicate: DropPredicate | null): void
}

/** What the hub needs of a node to deliver to it. */
interface Member {
  wants (roomId: string): boolean
  deliver (roomId: string, frame: string): void
}

export function createMemoryBusNetwork (): MemoryBusNetwork {
  const members = new Map<string, Member>()
  let dropping: DropPredicate | null = null

  const node = (nodeId: string = randomUUID()): MemoryBus => {
    assertNodeId(nodeId)
    if (members.has(nodeId)) throw new Error(`memory bus: node id ${nodeId} is already on this network`)
    const rooms = new Set<string>()
    let connected = true
    let closed = false
    // Set when envelopes may have been missed; cleared by the onResync call it owes.
    let resyncDue = false
    let envelopeHandler: ((roomId: string, envelope: BusEnvelope) => void) | null = null
    let resyncHandler: (() => void) | null = null
    const stats = { published: 0, received: 0, dropped: 0, probeFailures: 0, resyncs: 0 }

    const member: Member = {
      wants: (roomId) => connected && !closed && rooms.has(roomId),
      deliver (roomId, frame) {
        // Checked again on arrival: a node unsubscribed, cut off or closed meanwhile gets nothing.
        if (!member.wants(roomId)) return
        const envelope = foreignEnvelope(frame, nodeId, stats)
        if (envelope !== null) envelopeHandler?.(roomId, envelope)
      }
    }
    members.set(nodeId, member)

    return {
      nodeId,
      publish (roomId, envelope) {
        const frame = closed || !connected ? null : encodeEnvelope(nodeId, envelope)
        if (frame === null) {
          stats.dropped++
          return
        }
        stats.published++
        if (dropping?.(roomId, envelope) === true) return
        // Receivers are those subscribed now, as Redis decides at PUBLISH; one immediate per
        // publish keeps each publisher's order.
        // Its own echo would be dropped on arrival: a lone node (the single-node default) schedules nothing.
        const receivers = [...members.values()].filter((m) => m !== member && m.wants(roomId))
        if (receivers.length === 0) return
        setImmediate(() => {
          for (const receiver of receivers) receiver.deliver(roomId, frame)
        })
      },
      async subscribe (roomId) {
        if (closed) throw new Error('memory bus: closed')
        rooms.add(roomId)
        if (!connected) throw new Error('memory bus: disconnected')
      },
      unsubscribe (roomId) {
        rooms.delete(roomId)
      },
      onEnvelope (handler) {
        envelopeHandler = handler
      },
      onResync (handler) {
        resyncHandler = handler
      },
      problem (): BusProblem {
        if (closed) return 'memory bus: closed'
        return connected ? null : 'memory bus: disconnected'
      },
      stats: (): BusStats => ({ ...stats }),
      async close () {
        closed = true
        // The id may have gone to a new node since a first close.
        if (members.get(nodeId) === member) members.delete(nodeId)
      },
      disconnect () {
        if (!connected) return
        connected = false
        resyncDue = true
      },
      reconnect () {
        if (connected || closed) return
        connected = true
        setImmediate(() => {
          if (!connected || closed || !resyncDue) return
          resyncDue = false
          stats.resyncs++
          resyncHandler?.()
        })
      }
    }
  }

  return {
    node,
    dropWhere (predicate) {
      dropping = predicate
    }
  }
}
