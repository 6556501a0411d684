import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { AppError } from '../../src/errors.js'
import { ErrorResponse } from '../../src/protocol/resources.js'

const READY_TIMEOUT_MS = 2000

const healthRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { database, redis } = fastify

  fastify.get('/health', {
    schema: { response: { 200: Type.Object({ status: Type.Literal('ok') }) } }
  }, async () => ({ status: 'ok' as const }))

  fastify.get('/ready', {
    schema: { response: { 200: Type.Object({ status: Type.Literal('ready') }), 503: ErrorResponse } }
  }, async () => {
    try {
      await withTimeout(database.ping(), READY_TIMEOUT_MS)
    } catch {
      throw new AppError('unavailable', 'database is not answering')
    }
    if (redis !== null) {
      try {
        await withTimeout(redis.ping(), READY_TIMEOUT_MS)
      } catch {
        throw new AppError('unavailable', 'redis is not answering')
      }
    }
    const problem = fastify.realtime.problem()
    if (problem !== null) throw new AppError('unavailable', `the bus to the other nodes is not working: ${problem}`)
    return { status: 'ready' as const }
  })
}

async function withTimeout<T> (promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<never>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error('timed out')), ms)
    })])
  } finally {
    clearTimeout(timer)
  }
}

export default healthRoutes
