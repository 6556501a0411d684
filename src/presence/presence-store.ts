/** A user as presence lists them (the `online` entries of `joined` and of GET /rooms/:id/presence). */
export interface OnlineUser { readonly userId: string, readonly username: string }

/**
 * Who is online where, across every node. Each node reports only its own users, and only when
 * its first socket of a user arrives (in a room, or on the server) or its last one goes; the
 * node counts its sockets itself. A node's entries live while it keeps touching them: a node
 * that crashed or hung stops counting after the lease, so its users go offline by themselves.
 *
 * Calls from one node take effect in the order they are made.
 */
export interface PresenceStore {
  /** This node now has a socket of `user` in the room. Resolves true if no node had one: they came online there. */
  join (roomId: string, user: OnlineUser): Promise<boolean>
  /** This node's last socket of the user in the room went. Resolves true if no node has one now: they went offline there. */
  leave (roomId: string, userId: string): Promise<boolean>
  /** Users with a socket joined to the room on any live node, each once. */
  online (roomId: string): Promise<OnlineUser[]>
  /** This node now has a socket of `user`. Resolves true if no node had one: they came online. */
  connect (user: OnlineUser): Promise<boolean>
  /** This node's last socket of the user went. Resolves true if no node has one now: they went offline. */
  disconnect (userId: string): Promise<boolean>
  /** Whether any live node has a socket of the user. */
  isOnline (userId: string): Promise<boolean>
  /** Renews this node's lease; call it well within `leaseMs`. */
  touch (): Promise<void>
  /** How long this node's entries count without a touch. */
  readonly leaseMs: number
}
