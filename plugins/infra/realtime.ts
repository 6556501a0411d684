import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import type { TemplatedApp } from 'uWebSockets.js'
import { AppError } from '../../src/errors.js'
import { createMemoryPresence } from '../../src/presence/memory-presence-store.js'
import { createRealtime, type Realtime } from '../../src/realtime.js'

/** How long a node's presence entries count without a renewal (it renews every third of this). */
const PRESENCE_LEASE_MS = 60_000

declare module 'fastify' {
  interface FastifyInstance {
    realtime: Realtime
  }
}

/**
 * The WebSocket side on the uWS app that fronts this Fastify app. Closing the app first drains
 * it (messages accepted are written, sockets closed with 1001), then the database closes.
 */
export default fp<{ uws: TemplatedApp }>(async (fastify, { uws }) => {
  const realtime = createRealtime({
    uws,
    db: fastify.db,
    config: fastify.config,
    verify: (token) => fastify.jwt.verify(token),
    presenceStore: createMemoryPresence({ leaseMs: PRESENCE_LEASE_MS }).forNode(randomUUID()),
    log: fastify.log.child({ component: 'realtime' })
  })
  fastify.decorate('realtime', realtime)
  // uWS routes only real upgrade requests to /ws; a plain GET lands here.
  fastify.get('/ws', async () => {
    throw new AppError('bad_request', 'GET /ws is the WebSocket endpoint: send a WebSocket upgrade request')
  })
  fastify.addHook('preClose', async () => await realtime.shutdown())
}, { name: 'realtime', dependencies: ['config', 'db', 'auth'] })
