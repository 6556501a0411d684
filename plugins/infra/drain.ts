import fp from 'fastify-plugin'
import { AppError } from '../../src/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Whether this node is going away, for `/ready`. */
    drain: Drain
  }
  interface FastifyContextConfig {
    /** Still served once the app is closing, when every other route answers 503 (`/health`, `/ready`). */
    whileClosing?: boolean
  }
}

export interface Drain {
  /** True from `start()` or the start of `app.close()` on, and never false again. */
  readonly draining: boolean
  /** The node is about to stop: `/ready` answers 503 from now on, so balancers send it nothing new. */
  start (): void
}

/** Seconds a client refused by a closing node is told to wait (another node, or this one restarted). */
const RETRY_AFTER_SECONDS = 1

/**
 * The node's going away as the routes see it. `server.ts` starts draining before it stops
 * accepting; requests on connections still open are served until `app.close()` starts (its
 * sockets close, the database next), then answered 503 `unavailable`, but for the routes marked
 * `whileClosing`. Fastify's `return503OnClosing` would refuse `/ready` too, with a body of its own.
 */
export default fp(async (fastify) => {
  let draining = false
  let closing = false
  fastify.decorate('drain', {
    get draining () { return draining },
    start () { draining = true }
  })
  fastify.addHook('onRequest', (request, reply, done) => {
    if (closing && request.routeOptions.config.whileClosing !== true) {
      done(new AppError('unavailable', 'the server is shutting down; retry shortly', RETRY_AFTER_SECONDS))
    } else {
      done()
    }
  })
  // Registered before the realtime plugin's hook, so this runs before the sockets' shutdown starts.
  fastify.addHook('preClose', (done) => {
    draining = true
    closing = true
    done()
  })
}, { name: 'drain' })
