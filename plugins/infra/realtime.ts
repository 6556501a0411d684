import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import type { TemplatedApp } from 'uWebSockets.js'
import type { Bus } from '../../src/bus/bus.js'
import { createMemoryBusNetwork } from '../../src/bus/memory-bus.js'
import { createRedisBus } from '../../src/bus/redis-bus.js'
import { AppError } from '../../src/errors.js'
import { createMemoryPresence } from '../../src/presence/memory-presence-store.js'
import type { PresenceStore } from '../../src/presence/presence-store.js'
import { createRedisPresenceStore } from '../../src/presence/redis-presence-store.js'
import { createRealtime, type Realtime } from '../../src/realtime.js'

/**
 * How long a node's presence entries count without a renewal (it renews, and sweeps dead nodes,
 * every third of this): a killed node's users go offline within about 8 s, inside API.md's
 * HEARTBEAT_TIMEOUT + 10 s for the smallest heartbeat.
 */
const PRESENCE_LEASE_MS = 6000
/** With Redis, how often rooms with local sockets are compared with the database (a lost last message shows no seq jump). */
const FEED_CHECK_MS = 5000

/** Another way to reach the other nodes; tests run several nodes in one process over a memory bus. */
export interface ClusterOverride {
  readonly bus: Bus
  readonly presenceStore: PresenceStore
}

declare module 'fastify' {
  interface FastifyInstance {
    realtime: Realtime
  }
}

/**
 * The WebSocket side on the uWS app that fronts this Fastify app. Closing the app first drains
 * it (messages accepted are written, sockets closed with 1001, this node's presence removed),
 * then the database closes.
 */
export default fp<{ uws: TemplatedApp, cluster?: ClusterOverride | undefined }>(async (fastify, { uws, cluster }) => {
  const { url, prefix, sharded } = fastify.config.redis
  const log = fastify.log.child({ component: 'realtime' })
  const nodeId = randomUUID()
  let bus: Bus
  let presenceStore: PresenceStore
  if (cluster !== undefined) {
    ({ bus, presenceStore } = cluster)
  } else if (url !== null && fastify.redis !== null) {
    bus = createRedisBus({ url, prefix, sharded, nodeId, log: log.child({ component: 'bus' }) })
    presenceStore = createRedisPresenceStore({ redis: fastify.redis, prefix, nodeId, leaseMs: PRESENCE_LEASE_MS, log: log.child({ component: 'presence' }) })
  } else {
    bus = createMemoryBusNetwork().node(nodeId)
    presenceStore = createMemoryPresence({ leaseMs: PRESENCE_LEASE_MS }).forNode(nodeId)
  }
  const realtime = createRealtime({
    uws,
    db: fastify.db,
    config: fastify.config,
    verify: (token) => fastify.jwt.verify(token),
    presenceStore,
    bus,
    // A bus in this process loses nothing; Redis can.
    feedCheckMs: url === null && cluster === undefined ? null : FEED_CHECK_MS,
    meter: fastify.meter,
    log,
    databaseOutage: fastify.databaseOutage
  })
  log.info({ nodeId, bus: url === null ? 'memory' : sharded ? 'redis (sharded pub/sub)' : 'redis' }, 'realtime ready')
  fastify.decorate('realtime', realtime)
  // uWS routes only real upgrade requests to /ws; a plain GET lands here.
  fastify.get('/ws', async () => {
    throw new AppError('bad_request', 'GET /ws is the WebSocket endpoint: send a WebSocket upgrade request')
  })
  fastify.addHook('preClose', async () => await realtime.shutdown())
}, { name: 'realtime', dependencies: ['config', 'db', 'redis', 'auth', 'metrics'] })
