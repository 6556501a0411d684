// HS256 the way a hand-written server checks it with node:crypto, for the peers: the signature with
// the bench's secret (whatever the header says), then expiry. Our own claims (`aud`) are ignored.
import { createHmac, timingSafeEqual } from 'node:crypto'
import { BENCH_SECRET } from '../fixture.js'

export interface PeerClaims { readonly sub: string, readonly username: string, readonly exp: number }

export function verifyToken (token: unknown): PeerClaims | null {
  if (typeof token !== 'string') return null
  const [header, payload, signature] = token.split('.')
  if (header === undefined || payload === undefined || signature === undefined) return null
  const expected = createHmac('sha256', BENCH_SECRET).update(`${header}.${payload}`).digest()
  const given = Buffer.from(signature, 'base64url')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as PeerClaims
  return typeof claims.sub === 'string' && claims.exp * 1000 > Date.now() ? claims : null
}
