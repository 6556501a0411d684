import { pathToFileURL } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { pino, type Logger } from 'pino'
import { App } from 'uWebSockets.js'
import type { OpenDatabase } from '../plugins/infra/db.js'
import type { ClusterOverride } from '../plugins/infra/realtime.js'
import { buildApp } from './app.js'
import { ConfigError, loadConfig, readEnvFile, type Config } from './config.js'
import { createNodeDispatch } from './http/node-dispatch.js'
import { createHttpBridge } from './http/uws-bridge.js'
import { ListenError, startListener } from './listener.js'
import { loggerOptions } from './logger.js'

export interface RunningServer {
  readonly app: FastifyInstance
  /** The port the listener is bound to. */
  readonly port: number
  /**
   * Makes `/ready` answer 503, stops accepting, lets requests in flight finish, writes every
   * message already accepted, closes sockets with 1001, closes the database, then every connection.
   */
  close (): Promise<void>
}

const DRAIN_TIMEOUT_MS = 10_000

/** Starts the database, the REST app and the one uWS listener in front of them. */
export async function startServer (config: Config, logger: Logger | false, openDatabase?: OpenDatabase, cluster?: ClusterOverride): Promise<RunningServer> {
  const uws = App()
  const app = await buildApp(config, { logger, openDatabase, uws, cluster })
  await app.ready()
  const bridge = createHttpBridge({
    dispatch: createNodeDispatch((req, res) => { app.routing(req, res) }),
    bodyLimit: config.http.bodyLimit,
    onError: (error) => app.log.error({ err: error }, 'http bridge failed')
  })
  let listener
  try {
    listener = await startListener({ app: uws, host: config.http.host, port: config.http.port, http: bridge.handle })
  } catch (error) {
    await app.close()
    throw error
  }
  const { port } = listener
  let closing: Promise<void> | undefined
  return {
    app,
    port,
    async close () {
      closing ??= (async () => {
        // From here /ready says 503 draining, also to requests on connections that stay open.
        app.drain.start()
        listener.stopAccepting()
        await Promise.race([bridge.idle(), delay(DRAIN_TIMEOUT_MS)])
        await app.close()
        listener.closeAll()
      })()
      return closing
    }
  }
}

function delay (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}

const SHUTDOWN_TIMEOUT_MS = 30_000

/** Process entry: `.env`, config, server, signals. */
async function main (): Promise<void> {
  const started = performance.now()
  let config: Config
  try {
    config = loadConfig({ ...readEnvFile(), ...process.env })
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    for (const problem of error.problems) process.stderr.write(`config: ${problem}\n`)
    process.exit(1)
  }
  const log = pino(loggerOptions(config.log.level))
  process.on('uncaughtException', (error) => {
    log.fatal({ err: error }, 'uncaught exception')
    process.exit(1)
  })
  process.on('unhandledRejection', (error) => {
    log.fatal({ err: error }, 'unhandled rejection')
    process.exit(1)
  })

  let server: RunningServer
  try {
    server = await startServer(config, log)
  } catch (error) {
    // A port in use is an operator's mistake, not a bug: one line saying so, no stack.
    if (error instanceof ListenError) log.fatal(`could not start: ${error.message}`)
    else log.fatal({ err: error }, 'could not start')
    process.exit(1)
  }
  log.info({
    port: server.port,
    host: config.http.host,
    database: config.db.url === null ? `embedded (${config.db.dataDir})` : 'postgres',
    startupMs: Math.round(performance.now() - started)
  }, `listening on http://${config.http.host}:${server.port}`)

  let stopping = false
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal, exiting now')
      process.exit(1)
    }
    stopping = true
    log.info({ signal }, 'shutting down')
    // Deliberately not unref'd: it keeps the process alive until close() has finished.
    setTimeout(() => {
      log.error('shutdown took too long, exiting')
      process.exit(1)
    }, SHUTDOWN_TIMEOUT_MS)
    server.close().then(() => {
      log.info('stopped')
      process.exit(0)
    }, (error: unknown) => {
      log.error({ err: error }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main()
}
