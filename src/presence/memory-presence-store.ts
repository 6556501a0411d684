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

/** The nodes holding one user in one scope, with the username they reported. */
interface Entry { username: string, nodes: string[] }

/** The scope of a user's presence on the server; room ids cannot be empty, so it cannot clash. */
const SERVER = ''

export function createMemoryPresence (options: MemoryPresenceOptions): MemoryPresence {
  const now = options.now ?? Date.now
  const scopes = new Map<string, Map<string, Entry>>()
  const leases = new Map<string, number>()
  const live = (nodeId: string): boolean => (leases.get(nodeId) ?? 0) > now()

  /** The entry's live nodes; dead nodes' claims are dropped on the way. */
  const liveNodes = (scope: Map<string, Entry>, userId: string): string[] => {
    const entry = scope.get(userId)
    if (entry === undefined) return []
    entry.nodes = entry.nodes.filter(live)
    if (entry.nodes.length === 0) scope.delete(userId)
    return entry.nodes
  }

  const forNode = (nodeId: string): PresenceStore => {
    const renew = (): void => { leases.set(nodeId, now() + options.leaseMs) }
    renew()

    // Any report is a sign of life, as good as a touch.
    const add = (scopeId: string, user: OnlineUser): boolean => {
      renew()
      let scope = scopes.get(scopeId)
      if (scope === undefined) scopes.set(scopeId, scope = new Map())
      const nodes = liveNodes(scope, user.userId)
      if (nodes.includes(nodeId)) return false
      if (nodes.length === 0) {
        scope.set(user.userId, { username: user.username, nodes: [nodeId] })
        return true
      }
      nodes.push(nodeId)
      return false
    }

    const remove = (scopeId: string, userId: string): boolean => {
      renew()
      const scope = scopes.get(scopeId)
      if (scope === undefined) return false
      const entry = scope.get(userId)
      if (entry === undefined || !entry.nodes.includes(nodeId)) return false
      entry.nodes = entry.nodes.filter((node) => node !== nodeId)
      const gone = liveNodes(scope, userId).length === 0
      if (scope.size === 0) scopes.delete(scopeId)
      return gone
    }

    const list = (scopeId: string): OnlineUser[] => {
      const scope = scopes.get(scopeId)
      if (scope === undefined) return []
      const users: OnlineUser[] = []
      for (const [userId, entry] of scope) {
        if (liveNodes(scope, userId).length > 0) users.push({ userId, username: entry.username })
      }
      if (scope.size === 0) scopes.delete(scopeId)
      return users
    }

    return {
      leaseMs: options.leaseMs,
      join: async (roomId, user) => add(roomId, user),
      leave: async (roomId, userId) => remove(roomId, userId),
      online: async (roomId) => list(roomId),
      connect: async (user) => add(SERVER, user),
      disconnect: async (userId) => remove(SERVER, userId),
      isOnline: async (userId) => {
        const scope = scopes.get(SERVER)
        return scope !== undefined && liveNodes(scope, userId).length > 0
      },
      touch: async () => { renew() }
    }
  }

  return { forNode }
}
