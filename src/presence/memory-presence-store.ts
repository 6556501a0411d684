import type { OnlineUser, PresenceChange, PresenceStore, TouchChanges } from './presence-store.js'

export interface MemoryPresenceOptions {
  readonly leaseMs: number
  /** Injected in tests to move time on; defaults to Date.now. */
  readonly now?: () => number
}

/** Presence held in this process; every node sharing it gets its own store from `forNode`. */
export interface MemoryPresence {
  forNode (nodeId: string): PresenceStore
}

/** One node's claim on a user in a scope (a room id, or SERVER). */
interface Claim {
  readonly scope: string
  readonly userId: string
  readonly username: string
}

interface NodeState {
  expiresAt: number
  /** By claim key. */
  readonly claims: Map<string, Claim>
}

/** The scope of a user's presence on the server; room ids cannot be empty, so it cannot clash. */
const SERVER = ''

const keyOf = (scope: string, userId: string): string => `${scope}\n${userId}`
const changeOf = (claim: Claim): PresenceChange =>
  ({ roomId: claim.scope === SERVER ? null : claim.scope, userId: claim.userId, username: claim.username })

const NOTHING: TouchChanges = { online: [], offline: [] }

/**
 * The same model as the Redis store, in maps: each node's claims, and per claim the nodes holding
 * it, so a node that lapsed can be removed whole and a user's last holder is found without
 * scanning every node. Claims of a node whose lease ran out are dropped by whichever report or
 * sweep comes across them first, which is what makes each offline reported once.
 */
export function createMemoryPresence (options: MemoryPresenceOptions): MemoryPresence {
  const now = options.now ?? Date.now
  const nodes = new Map<string, NodeState>()
  /** Claim key → id of the node holding it, or ids of the nodes (only nodes present in `nodes`): most claims have one holder, kept without a set. */
  const holders = new Map<string, string | Set<string>>()
  /** Scope → user id → username, for every claim some node holds. */
  const scopes = new Map<string, Map<string, string>>()
  /** When a node last renewed its lease, and when renewals resumed after a silence of half a lease or more. */
  let lastHeard = -Infinity
  let heardSince = -Infinity

  const live = (nodeId: string): boolean => (nodes.get(nodeId)?.expiresAt ?? 0) > now()
  const holdersOf = (key: string): Iterable<string> => {
    const held = holders.get(key)
    return held === undefined ? [] : typeof held === 'string' ? [held] : held
  }
  const heldLive = (key: string): boolean => [...holdersOf(key)].some(live)

  const addHolder = (key: string, nodeId: string): void => {
    const held = holders.get(key)
    if (held === undefined || held === nodeId) holders.set(key, nodeId)
    else if (typeof held === 'string') holders.set(key, new Set([held, nodeId]))
    else held.add(nodeId)
  }
  const removeHolder = (key: string, nodeId: string): void => {
    const held = holders.get(key)
    if (held === nodeId || (typeof held === 'object' && held.delete(nodeId) && held.size === 0)) holders.delete(key)
  }

  /** Drops the claims on `key` of nodes whose lease ran out; returns how many nodes (all live) still hold it. */
  const prune = (key: string): number => {
    let holding = 0
    for (const nodeId of [...holdersOf(key)]) {
      if (live(nodeId)) {
        holding++
        continue
      }
      removeHolder(key, nodeId)
      nodes.get(nodeId)?.claims.delete(key)
    }
    return holding
  }

  /** Adds the node's claim; true if no live node held it before. */
  const add = (nodeId: string, node: NodeState, key: string, claim: Claim): boolean => {
    const held = node.claims.has(key)
    const holding = prune(key)
    node.claims.set(key, claim)
    addHolder(key, nodeId)
    let scope = scopes.get(claim.scope)
    if (scope === undefined) scopes.set(claim.scope, scope = new Map<string, string>())
    scope.set(claim.userId, claim.username)
    return !held && holding === 0
  }

  /** Removes the node's claim; the change if no live node holds it any more. */
  const remove = (nodeId: string, node: NodeState, key: string): PresenceChange | null => {
    const claim = node.claims.get(key)
    if (claim === undefined) return null
    node.claims.delete(key)
    removeHolder(key, nodeId)
    if (prune(key) > 0) return null
    const scope = scopes.get(claim.scope)
    scope?.delete(claim.userId)
    if (scope?.size === 0) scopes.delete(claim.scope)
    return changeOf(claim)
  }

  /** Starts a new lease; whether the node had lapsed (unknown, or its lease ran out), so others may have dropped its claims. */
  const renew = (nodeId: string): { node: NodeState, lapsed: boolean } => {
    if (now() - lastHeard > options.leaseMs / 2) heardSince = now()
    lastHeard = now()
    let node = nodes.get(nodeId)
    const lapsed = node === undefined || node.expiresAt <= now()
    if (node === undefined) nodes.set(nodeId, node = { expiresAt: 0, claims: new Map() })
    node.expiresAt = now() + options.leaseMs
    return { node, lapsed }
  }

  const forNode = (nodeId: string): PresenceStore => {
    /** This node's claims as it made them, to put back whatever the shared state lost. */
    const mine = new Map<string, Claim>()
    let resync = false

    const report = <R>(change: (node: NodeState) => R): R => {
      const { node, lapsed } = renew(nodeId)
      if (lapsed) resync = true
      return change(node)
    }
    const claim = (scope: string, user: OnlineUser): boolean => {
      const made: Claim = { scope, userId: user.userId, username: user.username }
      // One key string for both maps: a claim exists once per socket's user and room.
      const key = keyOf(scope, user.userId)
      mine.set(key, made)
      return report((node) => add(nodeId, node, key, made))
    }
    const unclaim = (scope: string, userId: string): boolean => {
      const key = keyOf(scope, userId)
      mine.delete(key)
      return report((node) => remove(nodeId, node, key) !== null)
    }

    return {
      leaseMs: options.leaseMs,
      join: async (roomId, user) => claim(roomId, user),
      leave: async (roomId, userId) => unclaim(roomId, userId),
      async online (roomId) {
        const users: OnlineUser[] = []
        for (const [userId, username] of scopes.get(roomId) ?? []) {
          if (heldLive(keyOf(roomId, userId))) users.push({ userId, username })
        }
        return users
      },
      connect: async (user) => claim(SERVER, user),
      disconnect: async (userId) => unclaim(SERVER, userId),
      isOnline: async (userId) => heldLive(keyOf(SERVER, userId)),
      async touch () {
        const { node, lapsed } = renew(nodeId)
        if (!lapsed && !resync) return NOTHING
        resync = false
        // Reports never fail here, so the shared state holds no claim this node let go of: only
        // claims others dropped (the lease ran out) are missing, and nothing is to be removed.
        const online: PresenceChange[] = []
        for (const [key, made] of mine) {
          if (!node.claims.has(key) && add(nodeId, node, key, made)) online.push(changeOf(made))
        }
        return { online, offline: [] }
      },
      async sweep () {
        const gone: PresenceChange[] = []
        // Leases that ran out while no node renewed were the store's outage, not the nodes'.
        if (now() - lastHeard > options.leaseMs / 2 || now() - heardSince < options.leaseMs) return gone
        for (const [id, node] of nodes) {
          if (node.expiresAt > now()) continue
          nodes.delete(id)
          for (const key of [...node.claims.keys()]) {
            const change = remove(id, node, key)
            if (change !== null) gone.push(change)
          }
        }
        return gone
      },
      async close () {
        mine.clear()
        const node = nodes.get(nodeId)
        if (node === undefined) return []
        nodes.delete(nodeId)
        const gone: PresenceChange[] = []
        for (const key of [...node.claims.keys()]) {
          const change = remove(nodeId, node, key)
          if (change !== null) gone.push(change)
        }
        return gone
      }
    }
  }

  return { forNode }
}
