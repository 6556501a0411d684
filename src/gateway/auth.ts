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

/** Verifies a compact JWT (signature, algorithm, `exp`, `sub`) and returns its claims; throws otherwise. */
export type VerifyToken = (token: string) => { sub?: unknown, username?: unknown, exp?: unknown }

export type UpgradeAuth =
  | { readonly ok: true, readonly user: User, readonly expiresAt: number, readonly protocol: string }
  | { readonly ok: false, readonly message: string }

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

/** Decides an upgrade from its headers alone, synchronously: no socket opens without a valid token. */
export function authenticateUpgrade (headers: UpgradeHeaders, verify: VerifyToken): UpgradeAuth {
  const token = tokenFromUpgrade(headers)
  if (token === null) return { ok: false, message: 'missing token: send the subprotocols "chat.v1, bearer.<jwt>", Authorization: Bearer <jwt>, or ?token=<jwt>' }
  let claims: ReturnType<VerifyToken>
  try {
    claims = verify(token)
  } catch (error) {
    const code = String((error as { code?: unknown } | null)?.code ?? '')
    return { ok: false, message: code.includes('EXPIRED') ? 'token expired' : 'invalid token' }
  }
  const { sub, username, exp } = claims
  if (typeof sub !== 'string' || !ID.test(sub) || typeof username !== 'string' || typeof exp !== 'number') {
    return { ok: false, message: 'invalid token' }
  }
  const offersSubprotocol = headers.protocol.split(',').some((p) => p.trim() === SUBPROTOCOL)
  return { ok: true, user: { id: sub, username }, expiresAt: exp * 1000, protocol: offersSubprotocol ? SUBPROTOCOL : '' }
}
