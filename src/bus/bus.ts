/**
 * What one node tells the others about a room. Frames are encoded once, by the node that made
 * them, and travel as they will be sent to sockets.
 * - `message`: a committed message's `message` frame; `seq` lets receivers deliver in order and
 *   find gaps.
 * - `event`: a frame that is not stored (typing, presence) and the user it is about.
 * - `revoke`: the user was removed from the private room; their sockets must stop receiving it.
 */
export type BusEnvelope =
  | { readonly kind: 'message', readonly seq: number, readonly text: string }
  | { readonly kind: 'event', readonly userId: string, readonly text: string }
  | { readonly kind: 'revoke', readonly userId: string }

/** Why the bus cannot be relied on right now (for `/ready` and the log); null when it can. */
export type BusProblem = string | null

/**
 * Carries room envelopes between the nodes of one deployment. It is a best-effort courier, never
 * the record: Postgres is. An envelope may be lost (a Redis outage, a dead subscriber connection);
 * receivers find out by a seq that jumps, by `onResync`, or by checking the database now and then.
 *
 * A node receives a room's envelopes only while it is subscribed to it, and never its own.
 */
export interface Bus {
  /** This node's id, unique in the deployment; envelopes carry it so a node drops its own echoes. */
  readonly nodeId: string
  /** Sends to the other nodes subscribed to the room. Never throws: an envelope the bus cannot take now is lost (and counted). */
  publish (roomId: string, envelope: BusEnvelope): void
  /**
   * Starts receiving the room's envelopes. Resolves once the subscription is in effect, so that
   * whatever is published after that arrives; rejects if the bus is down now (the subscription
   * is still kept, and restored when the bus is back, followed by `onResync`).
   * Subscriptions are not counted: one `unsubscribe` ends it.
   */
  subscribe (roomId: string): Promise<void>
  unsubscribe (roomId: string): void
  /** The one receiver of other nodes' envelopes, in the order the bus delivered them (a second call replaces it). */
  onEnvelope (handler: (roomId: string, envelope: BusEnvelope) => void): void
  /**
   * Called when the bus is subscribed again after envelopes may have been lost (a reconnect, a
   * subscriber rebuilt after a failed probe): every room may have missed something.
   */
  onResync (handler: () => void): void
  /** Null while the bus works; otherwise what is wrong (disconnected, probe failing). */
  problem (): BusProblem
  stats (): BusStats
  /**
   * Stops receiving and releases connections; publishes after this are dropped (and counted),
   * subscribes reject and `problem()` says closed. Calling it again is harmless.
   */
  close (): Promise<void>
}

export interface BusStats {
  /** Envelopes the bus took (over Redis: once Redis answered the PUBLISH), whether anyone was subscribed or not. */
  readonly published: number
  /** Other nodes' envelopes handed to the `onEnvelope` handler. */
  readonly received: number
  /** Envelopes this node could not hand to the bus (disconnected) or could not decode. */
  readonly dropped: number
  readonly probeFailures: number
  readonly resyncs: number
}
