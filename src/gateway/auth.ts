import { createBatchWriter, WriteRefused, type BatchWriter } from '../pipeline/batch-writer.js'
import { ID_PATTERN, type User } from '../protocol/resources.js'

/** The subprotocol API.md names; the server answers with it when the client offers it. */
export const SUBPROTOCOL = 'chat.v1'
const BEARER_PROTOCOL_PREFIX = 'bearer.'

/** What the upgrade handler copies out of the request (uWS's request is gone after the handler returns). */
export interface UpgradeHeaders {
  readonly protocol: string
  readonly authorization: string
  readonly query: string
}

/**
 * Verifies a compact JWT (signature, algorithm, `exp`, `sub`, and `aud`: the database that issued
 * it) and returns its claims; throws otherwise.
 */
export type VerifyToken = (token: string) => { sub?: unknown, username?: unknown, exp?: unknown }

/** What a token says, once its signature, expiry and database are checked; not yet whether its user exists. */
export type TokenCheck =
  | { readonly ok: true, readonly user: User, readonly expiresAt: number }
  | { readonly ok: false, readonly message: string }

export type UpgradeAuth =
  | { readonly ok: true, readonly user: User, readonly expiresAt: number, readonly protocol: string }
  | { readonly ok: false, readonly message: string }

/** Whether a token's user exists now: `unavailable` when the database cannot say (the token may be fine). */
export type UserStatus = 'exists' | 'gone' | 'unavailable'

export interface UserCheck {
  /** Looked up together with every other check of the same event-loop turn, in one query. */
  status (userId: string): Promise<UserStatus>
  /** Answers the checks already asked, then refuses new ones (as `unavailable`). */
  close (): Promise<void>
}

export interface UserCheckOptions {
  /** Which of the ids are users now. */
  readonly lookup: (userIds: string[]) => Promise<ReadonlySet<string>>
  /** Whether a lookup error means the database is unreachable rather than a bug. */
  readonly isUnavailable: (error: unknown) => boolean
}

/** Ids per lookup query; a larger burst takes several, one after another. */
const CHECK_BATCH = 1000
/** Checks waiting for a lookup before upgrades are refused as `unavailable`. */
const CHECK_QUEUE = 10_000

const ID = new RegExp(ID_PATTERN)

/**
 * Finds the token where API.md allows it, in this order: the `bearer.<jwt>` subprotocol (browsers
 * can set nothing else), `Authorization: Bearer`, `?token=`.
 */
export function tokenFromUpgrade (headers: UpgradeHeaders): string | null {
  for (const offered of headers.protocol.split(',')) {
    const protocol = offered.trim()
    if (protocol.startsWith(BEARER_PROTOCOL_PREFIX) && protocol.length > BEARER_PROTOCOL_PREFIX.length) return protocol.slice(BEARER_PROTOCOL_PREFIX.length)
  }
  const match = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization)
  if (match?.[1] !== undefined) return match[1]
  if (headers.query !== '') {
    const token = new URLSearchParams(headers.query).get('token')
    if (token !== null && token !== '') return token
  }
  return null
}

/** Checks a token synchronously (HMAC): the upgrade and the `auth` frame both start here. */
export function checkToken (token: string, verify: VerifyToken): TokenCheck {
  let claims: ReturnType<VerifyToken>
  try {
    claims = verify(token)
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code
    return { ok: false, message: typeof code === 'string' && code.includes('EXPIRED') ? 'token expired' : 'invalid token' }
  }
  const { sub, username, exp } = claims
  if (typeof sub !== 'string' || !ID.test(sub) || typeof username !== 'string' || typeof exp !== 'number') {
    return { ok: false, message: 'invalid token' }
  }
  return { ok: true, user: { id: sub, username }, expiresAt: exp * 1000 }
}

/**
 * Decides an upgrade from its headers, synchronously, as far as the token goes: a bad token is
 * refused before anything reaches the database. Whether the user exists is the caller's next step.
 */
export function authenticateUpgrade (headers: UpgradeHeaders, verify: VerifyToken): UpgradeAuth {
  const token = tokenFromUpgrade(headers)
  if (token === null) return { ok: false, message: 'missing token: send the subprotocols "chat.v1, bearer.<jwt>", Authorization: Bearer <jwt>, or ?token=<jwt>' }
  const checked = checkToken(token, verify)
  if (!checked.ok) return checked
  const offersSubprotocol = headers.protocol.split(',').some((p) => p.trim() === SUBPROTOCOL)
  return { ...checked, protocol: offersSubprotocol ? SUBPROTOCOL : '' }
}

/**
 * The user check of upgrades and `auth` frames, batched like a group commit: one lookup in flight,
 * and the checks arriving meanwhile (a reconnect storm after a restart, say) share the next one.
 */
export function createUserCheck (options: UserCheckOptions): UserCheck {
  const lookups: BatchWriter<string, boolean> = createBatchWriter({
    maxBatch: CHECK_BATCH,
    // 0: the upgrades of this event-loop turn are collected first.
    maxDelayMs: 0,
    queueLimit: CHECK_QUEUE,
    write: async (userIds) => {
      const found = await options.lookup(userIds)
      return userIds.map((id) => found.has(id))
    },
    isUnavailable: options.isUnavailable,
    // A read changes nothing: there is nothing uncertain about retrying it.
    isUncertain: () => false
  })
  return {
    async status (userId) {
      try {
        return await lookups.submit(userId) ? 'exists' : 'gone'
      } catch (error) {
        if (error instanceof WriteRefused || options.isUnavailable(error)) return 'unavailable'
        throw error
      }
    },
    close: async () => { await lookups.close() }
  }
}
