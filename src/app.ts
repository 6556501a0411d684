import { TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Ajv } from 'ajv'
import { App, type TemplatedApp } from 'uWebSockets.js'
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import configPlugin from '../plugins/infra/config.js'
import corsPlugin from '../plugins/infra/cors.js'
import dbPlugin, { type OpenDatabase } from '../plugins/infra/db.js'
import docsPlugin from '../plugins/infra/docs.js'
import drainPlugin from '../plugins/infra/drain.js'
import redisPlugin from '../plugins/infra/redis.js'
import authPlugin from '../plugins/infra/auth.js'
import metricsPlugin from '../plugins/infra/metrics.js'
import realtimePlugin, { type ClusterOverride } from '../plugins/infra/realtime.js'
import authRoutes from '../plugins/routes/auth.js'
import clientRoutes from '../plugins/routes/client.js'
import healthRoutes from '../plugins/routes/health.js'
import metricsRoutes from '../plugins/routes/metrics.js'
import historyRoutes from '../plugins/routes/history.js'
import memberRoutes from '../plugins/routes/members.js'
import messageRoutes from '../plugins/routes/messages.js'
import presenceRoutes from '../plugins/routes/presence.js'
import readRoutes from '../plugins/routes/reads.js'
import roomRoutes from '../plugins/routes/rooms.js'
import userRoutes from '../plugins/routes/users.js'
import { isDatabaseUnavailable } from '../db/errors.js'
import type { Config } from './config.js'
import { AppError, codeForStatus, type ErrorBody } from './errors.js'
import { debugging, redactUrl } from './logger.js'
import { textProblem } from './protocol/text.js'

export interface AppOptions {
  /** A pino logger instance or options; tests pass `false`. */
  readonly logger: FastifyServerOptions['loggerInstance'] | FastifyServerOptions['logger']
  /** Opens the database; tests wrap it to simulate outages. Defaults to `createDatabase`. */
  readonly openDatabase?: OpenDatabase | undefined
  /** The uWS app in front, which gets `/ws`; without it the app is reachable over REST only. */
  readonly uws?: TemplatedApp | undefined
  /** The bus and presence store shared with other nodes in this process (tests); by default REDIS_URL decides. */
  readonly cluster?: ClusterOverride | undefined
}

/** Query strings and path parameters arrive as text, so only they get type coercion; bodies are checked as sent. */
const coercingAjv = new Ajv({ coerceTypes: true, useDefaults: true, removeAdditional: false, allErrors: false })

/** Builds the REST app on top of the configured database. It never listens: `server.ts` owns the port. */
export async function buildApp (config: Config, options: AppOptions): Promise<FastifyInstance> {
  const logging = typeof options.logger === 'object' && options.logger !== null && 'child' in options.logger
    ? { loggerInstance: options.logger }
    : { logger: options.logger }
  const app = Fastify({
    ...logging,
    bodyLimit: config.http.bodyLimit,
    trustProxy: trustProxyOption(config.http.trustProxy),
    // Per-request lines would dominate the hot path; 5xx are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    // plugins/infra/drain.ts refuses requests while the app closes, with the contract's body and
    // not for /ready, which then says why it is not ready.
    return503OnClosing: false,
    // The embedded database's first start (initdb) can take well over Fastify's default 10 s on a busy machine.
    pluginTimeout: 120_000,
    // Router-level failures (bad percent-encoding, overlong parameters) get the contract's body too.
    frameworkErrors: (error, request, reply) => { errorHandler(error, request, reply) },
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 }
  }).withTypeProvider<TypeBoxTypeProvider>()

  app.setValidatorCompiler((route) => route.httpPart === 'body'
    ? TypeBoxValidatorCompiler(route)
    : coercingAjv.compile(route.schema))
  app.setErrorHandler(errorHandler)
  // API.md's one rule for text, on every route and every part of the request, before the schemas run.
  app.addHook('preValidation', async (request) => {
    const problem = textProblem(request.params, 'params') ?? textProblem(request.query, 'query') ?? textProblem(request.body, 'body')
    if (problem !== null) throw new AppError('bad_request', problem)
  })
  // One line per request at debug; the hook exists only when debug is on, so other levels pay nothing per request.
  if (debugging(app.log)) app.addHook('onResponse', logRequest)
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ error: 'not_found', message: `no route for ${request.method} ${request.url.split('?')[0] ?? ''}` } satisfies ErrorBody)
  })

  await app.register(configPlugin, { config })
  // Before the routes (its hook counts every REST error) and before realtime, which reports to it.
  await app.register(metricsPlugin)
  // Before every plugin with a preClose hook: the node drains before its sockets start closing.
  await app.register(drainPlugin)
  // Before any route: it documents the routes registered after it.
  await app.register(docsPlugin)
  await app.register(corsPlugin)
  await app.register(dbPlugin, { openDatabase: options.openDatabase })
  await app.register(redisPlugin)
  await app.register(authPlugin)
  // Without a listener's uWS app (REST-only use, e.g. the bench's plain Fastify listener) the socket
  // side still exists, on an app nobody connects to, so every route finds what it needs.
  await app.register(realtimePlugin, { uws: options.uws ?? App(), cluster: options.cluster })

  await app.register(healthRoutes)
  await app.register(metricsRoutes)
  await app.register(authRoutes)
  await app.register(roomRoutes)
  await app.register(memberRoutes)
  await app.register(historyRoutes)
  await app.register(messageRoutes)
  await app.register(userRoutes)
  await app.register(presenceRoutes)
  await app.register(readRoutes)
  await app.register(clientRoutes)
  return app
}

/** Fastify's typings lack the hop count its runtime accepts; a function says the same thing. */
function trustProxyOption (trust: Config['http']['trustProxy']): FastifyServerOptions['trustProxy'] {
  if (typeof trust === 'number') return (_address: string, hop: number) => hop < trust
  return typeof trust === 'object' ? [...trust] : trust
}

/** The route's pattern, not its URL: no ids, and no `?token=` (a 404 has no pattern: its URL, redacted). Headers and bodies are never logged. */
function logRequest (request: FastifyRequest, reply: FastifyReply, done: () => void): void {
  const route = request.routeOptions.url
  request.log.debug({
    method: request.method,
    ...(route === undefined ? { url: redactUrl(request.url) } : { route }),
    status: reply.statusCode,
    ms: Math.round(reply.elapsedTime * 10) / 10
  }, 'request completed')
  done()
}

function errorHandler (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body, retryAfter } = describe(error)
  // A 503 AppError is a deliberate answer (a draining node, a store that is away and logs that
  // once itself), and a database that is away is logged once per outage, not per request.
  if (status === 503) {
    if (isDatabaseUnavailable(error)) request.server.databaseOutage.failed(error)
    else if (!(error instanceof AppError)) request.log.warn({ err: error }, 'request failed: unavailable')
  } else if (status >= 500) request.log.error({ err: error }, 'request failed')
  if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter))
  void reply.code(status).send(body)
}

/** Maps any thrown error onto a contract code; 5xx details stay in the log. */
function describe (error: FastifyError): { status: number, body: ErrorBody, retryAfter?: number | undefined } {
  if (error instanceof AppError) {
    return { status: error.statusCode, body: { error: error.code, message: error.message }, retryAfter: error.retryAfter }
  }
  if (isDatabaseUnavailable(error)) {
    return { status: 503, body: { error: 'unavailable', message: 'the database is not reachable, retry shortly' }, retryAfter: 1 }
  }
  if (error.validation !== undefined) {
    return { status: 400, body: { error: 'bad_request', message: error.message } }
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, body: { error: 'payload_too_large', message: 'request body is too large' } }
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 400, body: { error: 'bad_request', message: 'request body must be application/json' } }
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, body: { error: 'bad_request', message: 'request body is empty' } }
  }
  const status = error.statusCode ?? 500
  if (status >= 400 && status < 500) {
    const code = codeForStatus(status)
    return { status: code === 'bad_request' ? 400 : status, body: { error: code, message: error.message } }
  }
  if (status === 503) return { status, body: { error: 'unavailable', message: 'service unavailable, retry shortly' } }
  return { status: 500, body: { error: 'internal', message: 'internal error' } }
}
