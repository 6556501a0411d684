import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { AppError } from '../../src/errors.js'
import { ErrorResponse } from '../../src/protocol/resources.js'

/** Compared as digests: equal lengths for `timingSafeEqual`, and nothing about the token's length leaks. */
function digest (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

/** `GET /metrics`: Prometheus text format; with METRICS_TOKEN set, only for `Authorization: Bearer <METRICS_TOKEN>`. */
const metricsRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { metrics } = fastify
  const token = fastify.config.metrics.token
  const expected = token === null ? null : digest(token)

  fastify.get('/metrics', {
    schema: {
      tags: ['operations'],
      summary: 'Prometheus metrics of this node',
      description: 'Prometheus text format (0.0.4). With `METRICS_TOKEN` set, send `Authorization: Bearer <METRICS_TOKEN>` (not a user\'s token).',
      response: { 200: Type.String({ description: 'the series, one per line' }), 401: ErrorResponse }
    }
  }, async (request, reply) => {
    if (expected !== null) {
      const [scheme = '', presented = ''] = (request.headers.authorization ?? '').split(' ', 2)
      if (scheme.toLowerCase() !== 'bearer' || !timingSafeEqual(digest(presented), expected)) {
        void reply.header('www-authenticate', 'Bearer realm="metrics"')
        throw new AppError('unauthorized', 'GET /metrics needs Authorization: Bearer <METRICS_TOKEN>')
      }
    }
    return await reply.type(metrics.contentType).send(await metrics.text())
  })
}

export default metricsRoutes
