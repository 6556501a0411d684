import type { OnlineUser, PresenceStore } from './presence-store.js'

export interface MemoryPresenceOptions {
  readonly leaseMs: number
  /** Injected in tests to move time on; defaults to Date.now. */
  readonly now?: () => number
}

/** Presence held in this process; every node sharing it gets its own store from `forNode`. */
export interface MemoryPresence {
  forNode (nodeId: string): PresenceStore
}

/** One node's claims: scope (a room id, or SERVER) → user id → username. */
interface NodeClaims {
  expiresAt: number
  readonly scopes: Map<string, Map<string, string>>
}

/** The scope of a user's presence on the server; room ids cannot be empty, so it cannot clash. */
const SERVER = ''

/**
 * Each node's claims are kept apart, so a user online through one node costs one map entry, and a
 * node whose lease ran out is dropped whole, all its users at once. Reads take the union of the
 * live nodes (a handful at most: the memory store serves nodes in one process, as in tests).
 */
export function createMemoryPresence (options: MemoryPresenceOptions): MemoryPresence {
  const now = options.now ?? Date.now
  const nodes = new Map<string, NodeClaims>()

  /** The live nodes; a node past its lease is forgotten with every claim it held. */
  const live = (): NodeClaims[] => {
    const time = now()
    const alive: NodeClaims[] = []
    for (const [nodeId, node] of nodes) {
      if (node.expiresAt > time) alive.push(node)
      else nodes.delete(nodeId)
    }
    return alive
  }
  const claimed = (scopeId: string, userId: string, except: NodeClaims | null = null): boolean =>
    live().some((node) => node !== except && node.scopes.get(scopeId)?.has(userId) === true)

  const forNode = (nodeId: string): PresenceStore => {
    // Any report is a sign of life, as good as a touch. A node that lapsed starts over empty.
    const renew = (): NodeClaims => {
      let node = nodes.get(nodeId)
      if (node === undefined || node.expiresAt <= now()) nodes.set(nodeId, node = { expiresAt: 0, scopes: new Map() })
      node.expiresAt = now() + options.leaseMs
      return node
    }
    renew()

    const add = (scopeId: string, user: OnlineUser): boolean => {
      const node = renew()
      let scope = node.scopes.get(scopeId)
      if (scope === undefined) node.scopes.set(scopeId, scope = new Map())
      if (scope.has(user.userId)) return false
      const first = !claimed(scopeId, user.userId, node)
      scope.set(user.userId, user.username)
      return first
    }

    const remove = (scopeId: string, userId: string): boolean => {
      const node = renew()
      const scope = node.scopes.get(scopeId)
      if (scope?.delete(userId) !== true) return false
      if (scope.size === 0) node.scopes.delete(scopeId)
      return !claimed(scopeId, userId)
    }

    return {
      leaseMs: options.leaseMs,
      join: async (roomId, user) => add(roomId, user),
      leave: async (roomId, userId) => remove(roomId, userId),
      async online (roomId) {
        const users = new Map<string, string>()
        for (const node of live()) {
          for (const [userId, username] of node.scopes.get(roomId) ?? []) users.set(userId, username)
        }
        return [...users].map(([userId, username]) => ({ userId, username }))
      },
      connect: async (user) => add(SERVER, user),
      disconnect: async (userId) => remove(SERVER, userId),
      isOnline: async (userId) => claimed(SERVER, userId),
      touch: async () => { renew() }
    }
  }

  return { forNode }
}
