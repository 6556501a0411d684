import type { Kysely } from 'kysely'
import type { Log } from './logger.js'
import type { TemplatedApp } from 'uWebSockets.js'
import { isDatabaseUnavailable, UncertainWriteError } from '../db/errors.js'
import { insertMessages, listMessages, type InsertOutcome, type MessageDraft } from '../db/repositories/messages.repository.js'
import { roomLastSeqs } from '../db/repositories/rooms.repository.js'
import { storeReadPositions } from '../db/repositories/reads.repository.js'
import { existingUserIds, markSeen } from '../db/repositories/users.repository.js'
import type { Database } from '../db/schema.js'
import type { Bus, BusStats } from './bus/bus.js'
import type { Config } from './config.js'
import { noMeter, type Meter } from './metrics.js'
import { createOutbox } from './fanout/outbox.js'
import { createRoomFeed, type RoomFeedStats } from './fanout/room-feed.js'
import { createUserCheck, type VerifyToken } from './gateway/auth.js'
import { createGateway, type GatewayStats } from './gateway/gateway.js'
import { createMembership, type Membership } from './gateway/membership.js'
import { createReplay } from './gateway/replay.js'
import { createTyping } from './gateway/typing.js'
import { createBatchWriter, WriteRefused, type BatchWriter, type BatchWriterStats } from './pipeline/batch-writer.js'
import { createPartitionedWriter } from './pipeline/partitioned-writer.js'
import { createPipeline, type MessagePipeline } from './pipeline/pipeline.js'
import { createReadPositions, type ReadPositions } from './pipeline/read-positions.js'
import { createPresence, type Presence } from './presence/presence.js'
import { encodeFrame } from './protocol/codec.js'
import { toMessage } from './protocol/resources.js'
import type { PresenceStore } from './presence/presence-store.js'
import type { OutageLog } from './outage-log.js'

export interface RealtimeOptions {
  /** The uWS app the listener serves: `/ws` is added to it, and room topics live in it. */
  readonly uws: TemplatedApp
  readonly db: Kysely<Database>
  readonly config: Config
  readonly verify: VerifyToken
  /** This node's view of the presence store (memory for one node; shared by every node otherwise). */
  readonly presenceStore: PresenceStore
  /** Carries room news to the other nodes (a memory bus of one node when there are none); closed by `shutdown`. */
  readonly bus: Bus
  /** How often rooms with local sockets are compared with the database; null when the bus cannot lose anything. */
  readonly feedCheckMs: number | null
  /** Where ack latencies and batch sizes go; counts are read from `stats()`. None by default. */
  readonly meter?: Meter | undefined
  readonly log: Log
  /** Told when a write or a user check finds the database unreachable; it logs the outage once, not each refused write. */
  readonly databaseOutage: Pick<OutageLog, 'failed'>
}

export interface Realtime {
  /** Refuses new upgrades, joins and messages, writes every message already accepted, then closes sockets with 1001. */
  shutdown (): Promise<void>
  /** `userId` was removed from the private room `roomId`: their sockets stop receiving it. */
  revoke (roomId: string, userId: string): void
  /** Who is online, for the REST routes. */
  readonly presence: Pick<Presence, 'online' | 'isOnline'>
  /** The message path sockets use, for `POST /rooms/:id/messages` (no sending socket: every socket in the room gets it). */
  readonly messages: Pick<MessagePipeline, 'store'>
  /** Read positions, for `PUT /rooms/:id/read` (no reading socket: every socket in the room gets the receipt). */
  readonly reads: Pick<ReadPositions, 'move'>
  /** Why this node cannot serve as part of the cluster right now (the bus is down or silent), for `/ready`; null when it can. */
  problem (): string | null
  stats (): RealtimeStats
}

/** The counts the parts keep (plain integers, read when metrics are scraped). */
export interface RealtimeStats {
  readonly gateway: GatewayStats
  readonly writer: BatchWriterStats
  readonly feed: RoomFeedStats
  readonly bus: BusStats
  readonly pipeline: ReturnType<MessagePipeline['stats']>
  readonly membership: ReturnType<Membership['stats']>
  readonly presence: ReturnType<Presence['stats']>
}

/** A replay sends until this much waits in a socket's buffer (or a quarter of WS_MAX_BACKPRESSURE), then waits for it to drain. */
const REPLAY_HIGH_WATER = 256 * 1024
/** How long a room repair waits for this node's write in flight to be published before it reads anyway. */
const SETTLE_WAIT_MS = 5000
/** How long shutdown waits for clients to answer the 1001 close before the listener drops them. */
const CLOSE_WAIT_MS = 2000
/** API.md: a typing start not refreshed within 5 s is followed by `typing: false`. */
const TYPING_TIMEOUT_MS = 5000
/** A typing start still being refreshed is relayed again this often, so sockets that joined since learn of it. */
const TYPING_RELAY_EVERY_MS = 3000
/** last_seen_at updates are grouped like messages, but nobody waits on them: a slower, larger batch is fine. */
const SEEN_WRITES = { maxBatch: 1000, maxDelayMs: 100, queueLimit: 100_000 }

/** Resolves after pending promise continuations (and this turn's I/O callbacks) have run. */
async function nextTurn (): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve))
}

/** Wires the socket side: gateway → pipeline → batch writer → database, and the room feed back out. */
export function createRealtime (options: RealtimeOptions): Realtime {
  const { uws, db, config, log } = options
  const meter = options.meter ?? noMeter
  /** A write (or the upgrade's user check) that cannot reach the database tells the outage log; its callers answer `unavailable` unlogged. */
  const watched = async <T>(write: Promise<T>): Promise<T> => await write.catch((error: unknown) => {
    if (isDatabaseUnavailable(error) || error instanceof UncertainWriteError) options.databaseOutage.failed(error)
    throw error
  })
  const { concurrency, ...laneOptions } = config.writer
  const lane = (): BatchWriter<MessageDraft, InsertOutcome> => createBatchWriter<MessageDraft, InsertOutcome>({
    ...laneOptions,
    write: async (drafts, batchId) => {
      const outcomes = await watched(insertMessages(db, drafts, batchId))
      meter.batchWritten(drafts.length)
      return outcomes
    },
    isUnavailable: isDatabaseUnavailable,
    isUncertain: (error) => error instanceof UncertainWriteError
  })
  const writer = createPartitionedWriter({
    lanes: Array.from({ length: concurrency }, lane),
    keyOf: (draft) => draft.roomId,
    queueLimit: laneOptions.queueLimit
  })
  const outbox = createOutbox(log)
  const published = async (): Promise<void> => {
    // Bounded: a write held while the database is away must not hold a repair with it.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([writer.settled(), new Promise((resolve) => { timer = setTimeout(resolve, SETTLE_WAIT_MS) })])
    clearTimeout(timer)
    // The pipeline publishes in promise continuations of the settled write; let them run first.
    await nextTurn()
  }
  const feed = createRoomFeed({
    uws,
    bus: options.bus,
    source: {
      async between (roomId, afterSeq, upTo) {
        const { messages } = await listMessages(db, { roomId, after: afterSeq, before: upTo + 1, limit: upTo - afterSeq })
        return messages.map((row) => ({ seq: Number(row.seq), text: encodeFrame({ type: 'message', ...toMessage(row) }) }))
      },
      lastSeqs: async (roomIds) => await roomLastSeqs(db, roomIds),
      published
    },
    // Called only once the node serves (a removal over REST, or from another node), when the gateway exists.
    revoked: (roomId, userId) => { gateway.revoke(roomId, userId) },
    resume: (ws) => { outbox.closeToResume(ws) },
    checkEveryMs: options.feedCheckMs,
    log
  })
  const seenWriter = createBatchWriter<string, undefined>({
    ...SEEN_WRITES,
    write: async (userIds) => {
      await watched(markSeen(db, userIds))
      return userIds.map(() => undefined)
    },
    isUnavailable: isDatabaseUnavailable,
    isUncertain: () => false
  })
  const presence = createPresence({
    store: options.presenceStore,
    broadcast: feed.broadcast,
    seen: (userId) => {
      seenWriter.submit(userId).catch((error: unknown) => {
        // Refused or failed because the database is away: the outage log has it already.
        if ((error instanceof WriteRefused && error.reason === 'store_down') || isDatabaseUnavailable(error)) return
        log.warn({ err: error, userId }, 'last_seen_at not written')
      })
    },
    log
  })
  const typing = createTyping({ broadcast: feed.broadcast, timeoutMs: TYPING_TIMEOUT_MS, relayEveryMs: TYPING_RELAY_EVERY_MS })
  const pipeline = createPipeline({ writer, feed, outbox, meter, log })
  const reads = createReadPositions({
    store: async (updates) => await watched(storeReadPositions(db, updates)),
    isUnavailable: isDatabaseUnavailable,
    feed,
    outbox,
    log
  })
  const membership = createMembership({
    db,
    feed,
    presence,
    typing,
    outbox,
    replay: createReplay({ db, outbox, highWater: Math.min(REPLAY_HIGH_WATER, config.socket.maxBackpressure / 4) }),
    log
  })
  const users = createUserCheck({ lookup: async (ids) => await watched(existingUserIds(db, ids)), isUnavailable: isDatabaseUnavailable })
  const gateway = createGateway({
    verify: options.verify,
    heartbeatSeconds: config.heartbeatSeconds,
    ...config.socket,
    log
  }, {
    outbox,
    presence,
    typing,
    membership,
    pipeline,
    reads,
    users
  })
  uws.ws('/ws', gateway.behavior)
  let stopping: Promise<void> | undefined
  return {
    async shutdown () {
      stopping ??= (async () => {
        gateway.stopAccepting()
        await writer.close()
        // Reads accepted so far are answered (and their receipts sent) before the sockets close.
        await reads.close()
        // The last batch's acks are sent from promise continuations; let them run before the 1001s.
        await nextTurn()
        await gateway.closeAll(CLOSE_WAIT_MS)
        await users.close()
        await presence.close()
        // The closed sockets' users were just seen: keep that before the database closes.
        await seenWriter.close()
        feed.close()
        await options.bus.close()
      })()
      await stopping
    },
    revoke: (roomId, userId) => { feed.revoke(roomId, userId) },
    presence,
    messages: pipeline,
    reads,
    problem: () => options.bus.problem(),
    stats: () => ({
      gateway: gateway.stats(),
      writer: writer.stats(),
      feed: feed.stats(),
      bus: options.bus.stats(),
      pipeline: pipeline.stats(),
      membership: membership.stats(),
      presence: presence.stats()
    })
  }
}
