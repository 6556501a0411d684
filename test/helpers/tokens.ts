import { createHmac } from 'node:crypto'
import { TEST_SECRET } from './server.js'

/** A JWT header or claims set. */
type Json = Record<string, unknown>

/** base64url of an object's JSON, or of a string as is: one part of a compact JWS. */
export function b64url (value: Json | string): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
}

export interface SignOptions {
  /** The HMAC key; TEST_SECRET, the key the test servers run with, unless given. */
  readonly secret?: string
  /** The HMAC hash, independent of what the header's alg claims, so tests can make mismatched tokens. */
  readonly hash?: 'sha256' | 'sha384' | 'sha512'
  /** Leaves the signature part empty (`header.payload.`), as for alg none. */
  readonly unsigned?: boolean
}

/**
 * A hand-made compact JWS signed with HMAC, so tests can produce tokens the server must refuse
 * (expired, wrong key, wrong or missing alg, no signature) as well as ones it must accept.
 */
export function signJwt (header: Json, payload: Json, options: SignOptions = {}): string {
  const input = `${b64url(header)}.${b64url(payload)}`
  if (options.unsigned === true) return `${input}.`
  const signature = createHmac(options.hash ?? 'sha256', options.secret ?? TEST_SECRET).update(input).digest('base64url')
  return `${input}.${signature}`
}

/** The header and claims of a compact JWS, unverified: for inspecting what the server issued. */
export function decodeJwt (token: string): { header: Json, payload: Json } {
  const [header = '', payload = ''] = token.split('.')
  return {
    header: JSON.parse(Buffer.from(header, 'base64url').toString()) as Json,
    payload: JSON.parse(Buffer.from(payload, 'base64url').toString()) as Json
  }
}
