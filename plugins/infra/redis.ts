import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import { createOutageLog } from '../../src/outage-log.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The Redis connection when REDIS_URL is set (multi-node fan-out and presence), else null. */
    redis: Redis | null
  }
}

/**
 * Connects to REDIS_URL if set. A Redis that is down at start does not stop the server: the client
 * keeps reconnecting and `/ready` says 503 meanwhile.
 */
export default fp(async (fastify) => {
  const { url } = fastify.config.redis
  if (url === null) {
    fastify.decorate('redis', null)
    return
  }
  const redis = new Redis(url, {
    // Fail commands at once while disconnected instead of queueing them behind a reconnect.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000)
  })
  // Once per outage, not per reconnect attempt: an operator needs when it started and when it ended.
  const outage = createOutageLog({ log: fastify.log, what: 'redis' })
  redis.on('error', (error) => { outage.failed(error) })
  redis.on('ready', () => { outage.succeeded() })
  fastify.decorate('redis', redis)
  fastify.addHook('onClose', async () => {
    outage.close()
    redis.disconnect()
  })
}, { name: 'redis', dependencies: ['config'] })
