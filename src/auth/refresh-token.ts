import { createHash, randomBytes } from 'node:crypto'

/** 256 random bits: guessing one is hopeless, so refresh needs no throttle of its own. */
const TOKEN_BYTES = 32

/** A new opaque refresh token (base64url) and the hash it is stored as. */
export function newRefreshToken (): { readonly token: string, readonly hash: string } {
  const token = randomBytes(TOKEN_BYTES).toString('base64url')
  return { token, hash: hashRefreshToken(token) }
}

/**
 * What the database keeps instead of the token: SHA-256 in hex. A plain hash suffices (unlike
 * passwords) because the token is random, and it lets a token be found by its hash.
 */
export function hashRefreshToken (token: string): string {
  return createHash('sha256').update(token).digest('hex')
}
