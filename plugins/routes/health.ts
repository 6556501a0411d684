import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type, type Static } from 'typebox'

/** How long `/ready` waits for each dependency; they are asked in parallel. */
const READY_TIMEOUT_MS = 2000

const Check = Type.Object({
  ok: Type.Boolean(),
  ms: Type.Optional(Type.Number({ description: 'how long the check took' })),
  error: Type.Optional(Type.String({ description: 'why it failed' }))
})
const Checks = Type.Object({
  database: Check,
  redis: Type.Optional(Check),
  bus: Check,
  draining: Type.Object({ ok: Type.Boolean() })
}, { description: '`redis` only when REDIS_URL is set' })
type Checks = Static<typeof Checks>
type CheckResult = Static<typeof Check>

const Ready = Type.Object({ status: Type.Literal('ready'), checks: Checks })
/** The contract's error body, plus the same per-check detail as the 200. */
const NotReady = Type.Object({
  error: Type.Literal('unavailable'),
  message: Type.String({ description: 'names every failing check' }),
  status: Type.Literal('unavailable'),
  checks: Checks
})

const healthRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { database, databaseOutage, drain, redis, realtime } = fastify

  // Liveness: the process answers. Never the database, or one outage would restart every node.
  fastify.get('/health', {
    config: { whileClosing: true },
    schema: { tags: ['operations'], summary: 'Liveness: the process answers', response: { 200: Type.Object({ status: Type.Literal('ok') }) } }
  }, async () => ({ status: 'ok' as const }))

  fastify.get('/ready', {
    config: { whileClosing: true },
    schema: { tags: ['operations'], summary: 'Readiness: the database, Redis and the bus answer, and the node is not draining', response: { 200: Ready, 503: NotReady } }
  }, async (request, reply) => {
    const [db, cache] = await Promise.all([
      timed(async () => await database.ping()),
      redis === null ? undefined : timed(async () => await redis.ping())
    ])
    // A poll is one more caller of the database: it starts or ends the outage, never logs each time.
    if (db.failure === undefined) databaseOutage.succeeded()
    else databaseOutage.failed(db.failure)
    const problem = realtime.problem()
    const checks: Checks = {
      database: db.check,
      ...(cache === undefined ? {} : { redis: cache.check }),
      bus: problem === null ? { ok: true } : { ok: false, error: problem },
      draining: { ok: !drain.draining }
    }
    // Only `draining` fails without an error of its own.
    const reasons = Object.entries(checks).flatMap(([name, check]: [string, CheckResult]) =>
      check.ok ? [] : [`${name}: ${check.error ?? 'the node is shutting down'}`])
    if (reasons.length === 0) return { status: 'ready' as const, checks }
    return await reply.code(503).send({ error: 'unavailable' as const, message: `not ready: ${reasons.join('; ')}`, status: 'unavailable' as const, checks })
  })
}

/** Runs one check within READY_TIMEOUT_MS; `failure` is what went wrong, for the outage log. */
async function timed (probe: () => Promise<unknown>): Promise<{ check: CheckResult, failure?: unknown }> {
  const started = performance.now()
  const ms = (): number => Math.round(performance.now() - started)
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([probe(), new Promise<never>((resolve, reject) => {
      timer = setTimeout(() => { reject(new CheckTimedOut()) }, READY_TIMEOUT_MS)
    })])
    return { check: { ok: true, ms: ms() } }
  } catch (error) {
    return { check: { ok: false, ms: ms(), error: describe(error) }, failure: error }
  } finally {
    clearTimeout(timer)
  }
}

class CheckTimedOut extends Error {
  constructor () {
    super(`timed out after ${READY_TIMEOUT_MS} ms`)
    this.name = 'CheckTimedOut'
  }
}

/** Unauthenticated callers read this: an error code, never a host, port or server message. */
function describe (error: unknown): string {
  if (error instanceof CheckTimedOut) return error.message
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' ? `not answering (${code})` : 'not answering'
}

export default healthRoutes
