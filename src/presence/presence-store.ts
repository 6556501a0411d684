/** A user as presence lists them (the `online` entries of `joined` and of GET /rooms/:id/presence). */
export interface OnlineUser { readonly userId: string, readonly username: string }

/** A user who came online or went offline in a room, or on the server (`roomId: null`). */
export interface PresenceChange {
  /** The room; null for the server-wide scope (connect/disconnect). */
  readonly roomId: string | null
  readonly userId: string
  readonly username: string
}

/** What a `touch` changed for the cluster: claims of this node that came back, and stale ones it dropped. */
export interface TouchChanges {
  /** Claims of this node that no live node had: announce them online again. */
  readonly online: readonly PresenceChange[]
  /** Claims the store still had for this node though the node had let go of them (a report that failed), now gone from every live node. */
  readonly offline: readonly PresenceChange[]
}

/**
 * Who is online where, across every node. Each node reports only its own users, and only when
 * its first socket of a user arrives (in a room, or on the server) or its last one goes; the
 * node counts its sockets itself. A node's claims count while its lease lasts; the lease is
 * renewed by `touch` and by every report. A node that crashed or hung stops counting when its
 * lease runs out (reads ignore it at once), and some node's `sweep` then removes it and learns,
 * alone in the cluster, which users that left offline.
 *
 * Calls from one node take effect in the order they are made.
 */
export interface PresenceStore {
  /** This node now has a socket of `user` in the room. Resolves true if no live node had one: they came online there. */
  join (roomId: string, user: OnlineUser): Promise<boolean>
  /** This node's last socket of the user in the room went. Resolves true if no live node has one now: they went offline there. */
  leave (roomId: string, userId: string): Promise<boolean>
  /** Users with a socket joined to the room on any live node, each once. */
  online (roomId: string): Promise<OnlineUser[]>
  /** This node now has a socket of `user`. Resolves true if no live node had one: they came online. */
  connect (user: OnlineUser): Promise<boolean>
  /** This node's last socket of the user went. Resolves true if no live node has one now: they went offline. */
  disconnect (userId: string): Promise<boolean>
  /** Whether any live node has a socket of the user. */
  isOnline (userId: string): Promise<boolean>
  /**
   * Renews this node's lease; call it well within `leaseMs`. The store keeps its own copy of this
   * node's claims: if the shared ones were lost or are in doubt (the node's lease ran out and
   * others removed some or all of them, the shared store restarted empty, a report failed), it
   * puts them back as they are, and resolves with what that changed for the cluster. Otherwise
   * it resolves with nothing.
   */
  touch (): Promise<TouchChanges>
  /**
   * Removes every node whose lease ran out, with its claims, and resolves with each (scope, user)
   * that no live node claims any more. Each such change goes to exactly one caller in the whole
   * cluster, however many nodes sweep at once, and never to a caller of `leave`/`disconnect`
   * or `close` as well. It removes nobody while no node has renewed its lease for half a lease,
   * nor within a lease after renewals resume: leases that ran out together were an outage of
   * the store (or of the way to it), and every node gets a lease to come back.
   */
  sweep (): Promise<PresenceChange[]>
  /**
   * This node stops: removes its lease and all of its claims at once, and resolves with those no
   * live node holds any more (they went offline). The store is not used after this.
   */
  close (): Promise<PresenceChange[]>
  /** How long this node's claims count without a touch or a report. */
  readonly leaseMs: number
}
