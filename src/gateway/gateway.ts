import type { HttpRequest, HttpResponse, us_socket_context_t, WebSocketBehavior } from 'uWebSockets.js'
import { decodeFrame } from '../protocol/codec.js'
import { CloseCode, MAX_FRAME_BYTES, type AuthFrame, type ClientFrame, type SocketErrorCode } from '../protocol/frames.js'
import { authenticateUpgrade, checkToken, type UserCheck, type UserStatus, type VerifyToken } from './auth.js'
import type { Outbox, OutboxStats } from '../fanout/outbox.js'
import type { Socket, SocketState } from '../fanout/socket-state.js'
import type { Membership } from './membership.js'
import { createExpiries } from './expiries.js'
import { createFrameLimit } from './rate-limit.js'
import { debugging, type Log } from '../logger.js'
import type { MessagePipeline } from '../pipeline/pipeline.js'
import type { ReadPositions } from '../pipeline/read-positions.js'
import type { Presence } from '../presence/presence.js'
import type { Typing } from './typing.js'

export interface GatewayOptions {
  readonly verify: VerifyToken
  /** Seconds a silent socket lives (uWS pings it before that); API.md's HEARTBEAT_TIMEOUT, 8-960 (uWS's range). */
  readonly heartbeatSeconds: number
  readonly rate: number
  readonly burst: number
  readonly maxBackpressure: number
  readonly log: Log
}

export interface GatewayDeps {
  readonly outbox: Outbox
  readonly membership: Membership
  readonly presence: Presence
  readonly typing: Typing
  readonly pipeline: MessagePipeline
  /** Whether a token's user still exists (upgrades and `auth` frames). */
  readonly users: UserCheck
  readonly reads: ReadPositions
}

export interface GatewayStats extends OutboxStats {
  readonly sockets: number
  /** Sockets opened (upgrades completed) since start. */
  readonly accepted: number
  /** Sockets closed, by WebSocket close code (`COUNTED_CLOSE_CODES`, anything else as `other`). */
  readonly closed: Readonly<Record<string, number>>
  /** Upgrades refused, by why. */
  readonly refused: Readonly<Record<UpgradeRefusal, number>>
  /** Frames refused by the rate limit (answered `rate_limited`, or closing the socket with 1008). */
  readonly rateLimited: number
}

/** Why an upgrade was refused: a bad token or a user that is gone, the database away, a draining node, a bug. */
export type UpgradeRefusal = 'unauthorized' | 'unavailable' | 'shutting_down' | 'internal'

/** Close codes counted apart: ours (CloseCode), a client's normal close, none sent (1005), a dropped connection (1006). */
export const COUNTED_CLOSE_CODES: readonly number[] = [1000, 1001, 1005, 1006, 1008, 1009, 1011, 1013]

export interface Gateway {
  readonly behavior: WebSocketBehavior<SocketState>
  /** Stops taking frames that change anything; joins and messages get `unavailable` from now on. */
  stopAccepting (): void
  /** Takes `userId`'s sockets on this node out of the room (they lost access to it). */
  revoke (roomId: string, userId: string): void
  /** Closes every socket with 1001 and resolves when they are closed (or after `ms`). */
  closeAll (ms: number): Promise<void>
  stats (): GatewayStats
}

/** uWS closes, with 1006 and no reason, frames above its own limit; ours (64 KiB) sits below it so clients get 1009. */
const UWS_MAX_PAYLOAD = 1024 * 1024
/** An invalid frame costs this many tokens, so a client sending garbage is limited well before a chatty one. */
const INVALID_FRAME_COST = 10
/** Refused frames in a row before a flooding socket is closed with 1008. */
const MAX_STRIKES = 10
/** How an upgrade is refused: why (for metrics and the log), HTTP status, then the body's error code and message. */
type Refusal = readonly [reason: UpgradeRefusal, status: string, code: SocketErrorCode, message: string]
/** Refusals of a good token whose user cannot be confirmed (the `auth` frame sends the same code and message). */
const USER_REFUSALS: Readonly<Record<Exclude<UserStatus, 'exists'> | 'failed', Refusal>> = {
  gone: ['unauthorized', '401 Unauthorized', 'unauthorized', 'the token\'s user does not exist'],
  unavailable: ['unavailable', '503 Service Unavailable', 'unavailable', 'the database is not reachable, retry shortly'],
  failed: ['internal', '500 Internal Server Error', 'internal', 'internal error']
}
const SHUTTING_DOWN: Refusal = ['shutting_down', '503 Service Unavailable', 'unavailable', 'the server is shutting down']

export function createGateway (options: GatewayOptions, deps: GatewayDeps): Gateway {
  const { outbox, membership, presence, typing, pipeline, reads } = deps
  const limit = createFrameLimit({ rate: options.rate, burst: options.burst, maxStrikes: MAX_STRIKES })
  const { log } = options
  /** Open sockets, and when each opened (ms), for the close log line. */
  const sockets = new Map<Socket, number>()
  /** Each user's sockets here: most users have one, kept without a set of its own. */
  const byUser = new Map<string, Socket | Set<Socket>>()
  let accepted = 0
  let rateLimited = 0
  const closed: Record<string, number> = { other: 0 }
  for (const code of COUNTED_CLOSE_CODES) closed[code] = 0
  const refused: Record<UpgradeRefusal, number> = { unauthorized: 0, unavailable: 0, shutting_down: 0, internal: 0 }
  let accepting = true
  let allClosed: (() => void) | null = null

  /** Sockets by when their token expires (`SocketState.expiresAt`): closed with 1008 then. */
  const expiries = createExpiries<Socket>((ws) => {
    const state = ws.getUserData()
    if (!state.open) return
    state.open = false
    ws.end(CloseCode.policy, 'token expired')
  })

  const ownSockets = (userId: string): Iterable<Socket> => {
    const own = byUser.get(userId)
    return own === undefined ? [] : own instanceof Set ? own : [own]
  }

  /** API.md `auth`: a token for the socket's own user moves its expiry to the later of the two. */
  const reauthenticate = async (ws: Socket, frame: AuthFrame): Promise<void> => {
    const state = ws.getUserData()
    const checked = checkToken(frame.token, options.verify)
    if (!checked.ok || checked.user.id !== state.user.id) {
      outbox.error(ws, 'unauthorized', checked.ok ? 'the token is for another user' : checked.message, frame.ref)
      return
    }
    const status = await deps.users.status(checked.user.id)
    if (!state.open) return
    if (status !== 'exists') {
      const [, , code, message] = USER_REFUSALS[status]
      outbox.error(ws, code, message, frame.ref)
      return
    }
    if (checked.expiresAt > state.expiresAt) {
      expiries.delete(ws, state.expiresAt)
      state.expiresAt = checked.expiresAt
      expiries.add(ws, state.expiresAt)
    }
    const expiresAt = new Date(state.expiresAt).toISOString()
    outbox.send(ws, frame.ref === undefined ? { type: 'authed', expiresAt } : { type: 'authed', expiresAt, ref: frame.ref })
  }

  /**
   * Runs `upgrade` (a `res.upgrade` after the handler returned) corked, without uws-pack 20.0.8's
   * `res.cork` bug: after an upgrade inside it, that cork may take the new socket for the HTTP
   * response and close it (uNetworking/uWebSockets#1928, fixed upstream by #1929), a 1006 right
   * after `welcome`. While another socket is corked, `res.cork` only runs its callback, so an open
   * socket's cork hosts the upgrade. With none open, it runs uncorked (uWS then prints a warning).
   */
  const upgradeLater = (res: HttpResponse, upgrade: () => void): void => {
    for (const host of sockets.keys()) {
      if (!host.getUserData().open) continue
      host.cork(() => { res.cork(upgrade) })
      return
    }
    upgrade()
  }

  /** Never logs the request: its query string or headers may carry the token. */
  const refuseUpgrade = (res: HttpResponse, reason: UpgradeRefusal, status: string, code: string, message: string): void => {
    refused[reason]++
    log.debug({ reason, status: Number.parseInt(status, 10), why: message }, 'upgrade refused')
    res.cork(() => {
      res.writeStatus(status)
        .writeHeader('content-type', 'application/json')
        .end(JSON.stringify({ error: code, message }))
    })
  }

  /** A bug, not bad input: log it and close the socket with 1011 rather than take the process down. */
  const fail = (ws: Socket, error: unknown): void => {
    log.error({ err: error }, 'socket frame failed')
    const state = ws.getUserData()
    if (!state.open) return
    state.open = false
    ws.end(CloseCode.internal, 'internal error')
  }

  const dispatch = (ws: Socket, frame: ClientFrame): void => {
    const { ref } = frame
    switch (frame.type) {
      case 'ping':
        outbox.send(ws, ref === undefined ? { type: 'pong' } : { type: 'pong', ref })
        return
      case 'auth':
        reauthenticate(ws, frame).catch((error: unknown) => { fail(ws, error) })
        return
      case 'typing':
        if (ws.getUserData().rooms.get(frame.room) !== 'joined') {
          outbox.error(ws, 'forbidden', 'join the room first', ref)
          return
        }
        typing.update(ws, frame.room, frame.typing)
        return
      case 'leave':
        membership.leave(ws, frame).catch((error: unknown) => { fail(ws, error) })
        return
      case 'join':
        if (!accepting) {
          outbox.error(ws, 'unavailable', 'the server is shutting down', ref)
          return
        }
        membership.join(ws, frame).catch((error: unknown) => { fail(ws, error) })
        return
      case 'message':
        // A message may follow its join without waiting for `joined`; the write checks the room itself.
        if (!ws.getUserData().rooms.has(frame.room)) {
          outbox.error(ws, 'forbidden', 'join the room first', ref)
          return
        }
        // Sending what one was typing ends the typing.
        typing.stop(ws, frame.room)
        pipeline.send(ws, frame).catch((error: unknown) => { fail(ws, error) })
        return
      case 'read':
        // Joined, not joining: only a completed join has checked that the user may read the room.
        if (ws.getUserData().rooms.get(frame.room) !== 'joined') {
          outbox.error(ws, 'forbidden', 'join the room first', ref)
          return
        }
        reads.read(ws, frame).catch((error: unknown) => { fail(ws, error) })
    }
  }

  const behavior: WebSocketBehavior<SocketState> = {
    compression: 0,
    maxPayloadLength: UWS_MAX_PAYLOAD,
    maxBackpressure: options.maxBackpressure,
    // We close slow sockets ourselves, with a code that tells the client to rejoin with afterSeq.
    closeOnBackpressureLimit: false,
    // uWS pings a socket silent for most of this (see the README) and closes it if still silent.
    idleTimeout: options.heartbeatSeconds,
    sendPingsAutomatically: true,
    maxLifetime: 0,

    upgrade (res, req: HttpRequest, context: us_socket_context_t) {
      // Everything is read from req here: it is invalid once this handler returns or awaits.
      const key = req.getHeader('sec-websocket-key')
      const extensions = req.getHeader('sec-websocket-extensions')
      const headers = { protocol: req.getHeader('sec-websocket-protocol'), authorization: req.getHeader('authorization'), query: req.getQuery() ?? '' }
      if (!accepting) {
        refuseUpgrade(res, ...SHUTTING_DOWN)
        return
      }
      // Signature, expiry and database first, synchronously: a bad token never reaches the database.
      const auth = authenticateUpgrade(headers, options.verify)
      if (!auth.ok) {
        refuseUpgrade(res, 'unauthorized', '401 Unauthorized', 'unauthorized', auth.message)
        return
      }
      // Then whether the user exists, which completes the upgrade later: the client may be gone by
      // then, and an aborted response must not be touched.
      let aborted = false
      res.onAborted(() => { aborted = true })
      const settle = (status: UserStatus | 'failed'): void => {
        if (aborted) return
        const refusal = !accepting ? SHUTTING_DOWN : status === 'exists' ? null : USER_REFUSALS[status]
        if (refusal !== null) {
          refuseUpgrade(res, ...refusal)
          return
        }
        const state: SocketState = {
          user: auth.user,
          expiresAt: auth.expiresAt,
          rooms: new Map(),
          open: true,
          onDrain: undefined,
          typing: undefined,
          ...limit.initial(Date.now())
        }
        upgradeLater(res, () => { res.upgrade(state, key, auth.protocol, extensions, context) })
      }
      deps.users.status(auth.user.id).then(settle, (error: unknown) => {
        log.error({ err: error }, 'upgrade: user lookup failed')
        settle('failed')
      })
    },

    open (ws) {
      sockets.set(ws, Date.now())
      accepted++
      const { user } = ws.getUserData()
      log.debug({ userId: user.id }, 'socket opened')
      const own = byUser.get(user.id)
      if (own === undefined) byUser.set(user.id, ws)
      else if (own instanceof Set) own.add(ws)
      else byUser.set(user.id, new Set([own, ws]))
      presence.connected(user)
      outbox.send(ws, { type: 'welcome', user: { id: user.id, username: user.username }, heartbeat: options.heartbeatSeconds, expiresAt: new Date(ws.getUserData().expiresAt).toISOString() })
      expiries.add(ws, ws.getUserData().expiresAt)
    },

    message (ws, data, isBinary) {
      const state = ws.getUserData()
      if (!state.open) return
      if (data.byteLength > MAX_FRAME_BYTES) {
        state.open = false
        ws.end(CloseCode.tooBig, `frame larger than ${MAX_FRAME_BYTES} bytes`)
        return
      }
      const decoded = decodeFrame(data, isBinary)
      const verdict = limit.take(state, decoded.ok ? 1 : INVALID_FRAME_COST, Date.now())
      if (verdict !== 'ok') rateLimited++
      if (verdict === 'close') {
        state.open = false
        ws.end(CloseCode.policy, 'rate limit exceeded')
        return
      }
      if (verdict === 'limited') {
        outbox.error(ws, 'rate_limited', `slow down: at most ${options.rate} frames/s`, decoded.ok ? decoded.frame.ref : decoded.ref)
        return
      }
      if (!decoded.ok) {
        outbox.error(ws, 'bad_request', decoded.message, decoded.ref)
        return
      }
      try {
        dispatch(ws, decoded.frame)
      } catch (error) {
        fail(ws, error)
      }
    },

    drain (ws) {
      const state = ws.getUserData()
      const resume = state.onDrain
      if (resume === undefined) return
      state.onDrain = undefined
      resume()
    },

    dropped (ws) {
      outbox.dropped(ws)
    },

    close (ws, code) {
      const state = ws.getUserData()
      state.open = false
      expiries.delete(ws, state.expiresAt)
      const label = COUNTED_CLOSE_CODES.includes(code) ? String(code) : 'other'
      closed[label] = (closed[label] ?? 0) + 1
      if (debugging(log)) log.debug({ userId: state.user.id, code, seconds: (Date.now() - (sockets.get(ws) ?? Date.now())) / 1000 }, 'socket closed')
      sockets.delete(ws)
      const own = byUser.get(state.user.id)
      if (own === ws || (own instanceof Set && own.delete(ws) && own.size === 0)) byUser.delete(state.user.id)
      outbox.forget(ws)
      membership.closed(ws)
      presence.disconnected(state.user)
      if (sockets.size === 0) allClosed?.()
    }
  }

  return {
    behavior,
    revoke (roomId, userId) {
      for (const ws of ownSockets(userId)) membership.revoke(ws, roomId)
    },
    stopAccepting () {
      accepting = false
    },
    async closeAll (ms) {
      accepting = false
      if (sockets.size === 0) return
      const done = new Promise<void>((resolve) => { allClosed = resolve })
      for (const ws of sockets.keys()) {
        const state = ws.getUserData()
        if (!state.open) continue
        state.open = false
        ws.end(CloseCode.shuttingDown, 'server shutting down')
      }
      let timer: NodeJS.Timeout | undefined
      await Promise.race([done, new Promise<void>((resolve) => { timer = setTimeout(resolve, ms) })])
      clearTimeout(timer)
    },
    stats: () => ({ sockets: sockets.size, accepted, closed: { ...closed }, refused: { ...refused }, rateLimited, ...outbox.stats() })
  }
}
