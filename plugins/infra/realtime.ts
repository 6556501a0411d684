import fp from 'fastify-plugin'
import type { TemplatedApp } from 'uWebSockets.js'
import { AppError } from '../../src/errors.js'
import { createRealtime, type Realtime } from '../../src/realtime.js'

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
    log: fastify.log.child({ component: 'realtime' })
  })
  fastify.decorate('realtime', realtime)
  // uWS routes only real upgrade requests to /ws; a plain GET lands here.
  fastify.get('/ws', async () => {
    throw new AppError('bad_request', 'GET /ws is the WebSocket endpoint: send a WebSocket upgrade request')
  })
  fastify.addHook('preClose', async () => await realtime.shutdown())
}, { name: 'realtime', dependencies: ['config', 'db', 'auth'] })
