import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import type { Log } from '../logger.js'
import type { Bus, BusEnvelope, BusProblem, BusStats } from './bus.js'
import { assertNodeId, encodeEnvelope, foreignEnvelope } from './envelope.js'

export interface RedisBusOptions {
  readonly url: string
  /** Put before every channel, so that deployments (and test runs) can share one Redis. */
  readonly prefix: string
  /** SPUBLISH/SSUBSCRIBE (Redis 7 sharded pub/sub) instead of PUBLISH/SUBSCRIBE. */
  readonly sharded: boolean
  /** Default: a random UUID. */
  readonly nodeId?: string
  readonly log: Log
  /** How often this node checks that it hears its own probe (default 2000 ms). */
  readonly probeEveryMs?: number
  /** How long a probe may take before the path is taken for dead (default 2000 ms). */
  readonly probeTimeoutMs?: number
}

/** Publishes sent but not yet answered beyond which more are dropped: a stalled connection must not queue without bound. */
const MAX_PENDING_PUBLISHES = 10_000
const QUIT_TIMEOUT_MS = 1000

/** One subscriber connection from its `ready` to its `close`: what Redis acknowledged on it. */
interface Session {
  readonly active: Set<string>
  readonly inflight: Map<string, Promise<void>>
  /** Every room (and the probe channel) subscribed since `ready`. */
  restored: boolean
  /** Why restoring failed on a live connection (Redis refused a subscription). */
  failure: string | null
}

interface Probe {
  readonly token: string
  /** The subscriber session it was sent for: a probe lost with its connection says nothing new. */
  readonly session: Session
  readonly timer: NodeJS.Timeout
  acked: boolean
  received: boolean
}

/**
 * The bus over Redis pub/sub, one channel per room. Subscriptions are kept here rather than by
 * ioredis, so that after any reconnect they are all restored before `onResync` says envelopes
 * may have been lost. A probe on the node's own channel catches the failure health checks miss:
 * a subscriber connection that is open but no longer delivers (seen after failovers).
 */
export function createRedisBus (options: RedisBusOptions): Bus {
  const nodeId = options.nodeId ?? randomUUID()
  assertNodeId(nodeId)
  const { log, sharded } = options
  const probeEveryMs = options.probeEveryMs ?? 2000
  const probeTimeoutMs = options.probeTimeoutMs ?? 2000
  const roomPrefix = `${options.prefix}room:`
  const probeChannel = `${options.prefix}probe:${nodeId}`

  const rooms = new Set<string>()
  const stats = { published: 0, received: 0, dropped: 0, probeFailures: 0, resyncs: 0 }
  let envelopeHandler: ((roomId: string, envelope: BusEnvelope) => void) | null = null
  let resyncHandler: (() => void) | null = null
  let closed = false
  let closing: Promise<void> | null = null
  let pending = 0
  let session: Session | null = null
  // Set when envelopes may have been missed; cleared by the onResync call it owes.
  let resyncDue = false
  let unreachable = false
  let probeProblem: string | null = null
  let probe: Probe | null = null
  let probeCount = 0
  // Subscribes waiting for the subscriber's connection attempt to end one way or the other.
  let waiting: Array<() => void> = []

  const publishOn = async (redis: Redis, channel: string, frame: string): Promise<unknown> =>
    sharded ? await redis.spublish(channel, frame) : await redis.publish(channel, frame)
  const listen = async (redis: Redis, channel: string): Promise<unknown> =>
    sharded ? await redis.ssubscribe(channel) : await redis.subscribe(channel)
  const unlisten = async (redis: Redis, channel: string): Promise<unknown> =>
    sharded ? await redis.sunsubscribe(channel) : await redis.unsubscribe(channel)

  const wake = (): void => {
    const woken = waiting
    waiting = []
    for (const resume of woken) resume()
  }

  const wentDown = (connection: 'publisher' | 'subscriber', err?: unknown): void => {
    if (closed || unreachable) return
    unreachable = true
    log.warn({ err, connection }, 'redis bus: lost Redis; envelopes are lost until it is back')
  }
  const cameBack = (): void => {
    if (closed || !unreachable || publisher.status !== 'ready' || session?.restored !== true) return
    unreachable = false
    log.info('redis bus: Redis is back')
  }

  // Fail at once while disconnected (no offline queue), and fail what was in flight when the
  // connection closes instead of sending it again after a reconnect (maxRetriesPerRequest 0).
  let publisher = new Redis(options.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    connectionName: `${options.prefix}bus:${nodeId}:pub`
  })
  const attachPublisher = (redis: Redis): void => {
    // Events of a replaced connection are ignored; the error listener stays so ioredis does not print it.
    redis.on('error', (err: unknown) => { if (redis === publisher) wentDown('publisher', err) })
    redis.on('close', () => { if (redis === publisher) wentDown('publisher') })
    redis.on('ready', () => { if (redis === publisher) cameBack() })
  }
  attachPublisher(publisher)

  let subscriber = publisher.duplicate({ autoResubscribe: false, connectionName: `${options.prefix}bus:${nodeId}:sub` })

  /** Sends the room's SUBSCRIBE on this session; the room is active once Redis acknowledged it. */
  const subscribeOn = (s: Session, redis: Redis, roomId: string): Promise<void> => {
    const command: Promise<void> = listen(redis, roomPrefix + roomId).then(() => {
      // Unless an unsubscribe came in between (it forgets the command).
      if (s.inflight.get(roomId) !== command) return
      s.inflight.delete(roomId)
      s.active.add(roomId)
    }, (error: unknown) => {
      if (s.inflight.get(roomId) === command) s.inflight.delete(roomId)
      throw error
    })
    s.inflight.set(roomId, command)
    return command
  }

  const resync = (): void => {
    if (!resyncDue) return
    resyncDue = false
    stats.resyncs++
    try {
      resyncHandler?.()
    } catch (error) {
      // Called from a connection event, where a throw would be an unhandled rejection.
      log.error({ err: error }, 'redis bus: the resync handler threw')
    }
  }

  const restore = async (redis: Redis): Promise<void> => {
    const s: Session = { active: new Set(), inflight: new Map(), restored: false, failure: null }
    session = s
    const results = await Promise.allSettled([listen(redis, probeChannel), ...[...rooms].map(async (roomId) => { await subscribeOn(s, redis, roomId) })])
    if (session !== s || closed) return
    const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected')
    if (failed !== undefined) {
      // Redis refused on a live connection (ACL, a slot it does not own): a reconnect would not
      // help, so problem() reports it until the connection is replaced.
      s.failure = `redis bus: Redis refused a subscription: ${String(failed.reason)}`
      log.error({ err: failed.reason }, 'redis bus: could not restore subscriptions')
      wake()
      return
    }
    s.restored = true
    wake()
    cameBack()
    resync()
  }

  const lost = (): void => {
    if (session === null) return
    session = null
    resyncDue = true
  }

  const arrived = (channel: string, frame: string): void => {
    if (channel === probeChannel) {
      if (probe !== null && frame === probe.token) {
        probe.received = true
        probeSettled(probe)
      }
      return
    }
    const roomId = channel.slice(roomPrefix.length)
    // Unsubscribed: Redis may still send what it had queued before the UNSUBSCRIBE.
    if (!rooms.has(roomId)) return
    const envelope = foreignEnvelope(frame, nodeId, stats)
    if (envelope === null) return
    try {
      envelopeHandler?.(roomId, envelope)
    } catch (error) {
      // Thrown inside ioredis's reply parser it would take the connection down with it.
      log.error({ err: error, roomId }, 'redis bus: the envelope handler threw')
    }
  }

  const attachSubscriber = (redis: Redis): void => {
    redis.on('error', (err: unknown) => { if (redis === subscriber) wentDown('subscriber', err) })
    redis.on('close', () => {
      if (redis !== subscriber || closed) return
      lost()
      wake()
      wentDown('subscriber')
    })
    redis.on('ready', () => { if (redis === subscriber) void restore(redis) })
    redis.on(sharded ? 'smessage' : 'message', (channel: string, frame: string) => { if (redis === subscriber) arrived(channel, frame) })
  }
  attachSubscriber(subscriber)

  /** Replaces a connection that is open but silent; the old one's pending commands fail with it. */
  const rebuildSubscriber = (): void => {
    const old = subscriber
    subscriber = old.duplicate()
    attachSubscriber(subscriber)
    lost()
    wake()
    old.disconnect()
  }
  const rebuildPublisher = (): void => {
    const old = publisher
    publisher = old.duplicate()
    attachPublisher(publisher)
    old.disconnect()
  }

  const probeFailed = (problem: string): void => {
    stats.probeFailures++
    if (probeProblem === null) log.warn(problem)
    probeProblem = problem
  }
  const probeSettled = (p: Probe): void => {
    if (probe !== p || !p.acked || !p.received) return
    clearTimeout(p.timer)
    probe = null
    if (probeProblem === null) return
    probeProblem = null
    log.info('redis bus: the probe is answered again')
  }
  const probeTimedOut = (p: Probe): void => {
    if (probe !== p || closed) return
    probe = null
    if (!p.acked) {
      // Received or not, an unanswered PUBLISH means replies no longer come back on that connection.
      probeFailed(`redis bus: Redis did not answer a probe within ${probeTimeoutMs} ms; publisher reconnected`)
      rebuildPublisher()
    } else if (session === p.session) {
      probeFailed(`redis bus: own probe not received within ${probeTimeoutMs} ms; subscriber rebuilt`)
      rebuildSubscriber()
    }
  }
  const sendProbe = (): void => {
    const s = session
    if (closed || probe !== null || publisher.status !== 'ready' || s === null || !s.restored) return
    const p: Probe = { token: String(++probeCount), session: s, timer: setTimeout(() => probeTimedOut(p), probeTimeoutMs).unref(), acked: false, received: false }
    probe = p
    publishOn(publisher, probeChannel, p.token).then(() => {
      p.acked = true
      probeSettled(p)
    }, () => {
      // The publisher lost its connection: not being connected already shows in problem().
      if (probe !== p) return
      clearTimeout(p.timer)
      probe = null
    })
  }
  const probeTimer = setInterval(sendProbe, probeEveryMs).unref()

  /** Subscribes on the current session; without one, waits for a connection attempt under way (once). */
  const subscribeNow = async (roomId: string, mayWait: boolean): Promise<void> => {
    const s = session
    if (s !== null) {
      if (s.active.has(roomId)) return
      await (s.inflight.get(roomId) ?? subscribeOn(s, subscriber, roomId))
      return
    }
    const status = subscriber.status
    if (mayWait && !closed && (status === 'wait' || status === 'connecting' || status === 'connect' || status === 'ready')) {
      await new Promise<void>((resolve) => waiting.push(resolve))
      await subscribeNow(roomId, false)
      return
    }
    throw new Error('redis bus: not connected to Redis')
  }

  const quit = async (redis: Redis): Promise<void> => {
    if (redis.status === 'ready') {
      // QUIT waits for replies still owed; a connection that stopped answering is cut after a second.
      await Promise.race([redis.quit().catch(() => {}), sleep(QUIT_TIMEOUT_MS, undefined, { ref: false })])
    }
    redis.disconnect()
  }

  return {
    nodeId,
    publish (roomId, envelope) {
      const frame = closed || publisher.status !== 'ready' || pending >= MAX_PENDING_PUBLISHES ? null : encodeEnvelope(nodeId, envelope)
      if (frame === null) {
        stats.dropped++
        return
      }
      pending++
      publishOn(publisher, roomPrefix + roomId, frame).then(() => {
        pending--
        stats.published++
      }, () => {
        pending--
        stats.dropped++
      })
    },
    async subscribe (roomId) {
      if (closed) throw new Error('redis bus: closed')
      rooms.add(roomId)
      try {
        await subscribeNow(roomId, true)
      } catch (error) {
        // Kept: restored on the next connection, and onResync tells the caller what it missed.
        if (rooms.has(roomId)) resyncDue = true
        throw error
      }
    },
    unsubscribe (roomId) {
      if (!rooms.delete(roomId) || session === null) return
      session.active.delete(roomId)
      session.inflight.delete(roomId)
      // A failure means the connection is gone, and with it the subscription.
      unlisten(subscriber, roomPrefix + roomId).catch(() => {})
    },
    onEnvelope (handler) {
      envelopeHandler = handler
    },
    onResync (handler) {
      resyncHandler = handler
    },
    problem (): BusProblem {
      if (closed) return 'redis bus: closed'
      // First: it names the cause while the connection it replaced comes up.
      if (probeProblem !== null) return probeProblem
      if (publisher.status !== 'ready') return 'redis bus: not connected to Redis (publisher)'
      if (session === null) return 'redis bus: not connected to Redis (subscriber)'
      return session.restored ? null : session.failure ?? 'redis bus: subscribing again'
    },
    stats: (): BusStats => ({ ...stats }),
    async close () {
      closing ??= (async () => {
        closed = true
        clearInterval(probeTimer)
        if (probe !== null) clearTimeout(probe.timer)
        probe = null
        session = null
        wake()
        await Promise.all([quit(publisher), quit(subscriber)])
      })()
      await closing
    }
  }
}
