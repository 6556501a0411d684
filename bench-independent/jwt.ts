// HS256 JSON Web Tokens with node:crypto only: the peers verify what the harness signs, the way a
// hand-written server would without a JWT library.
import { createHmac, timingSafeEqual } from 'node:crypto'

export interface Claims {
  sub: string
  username: string
  exp: number
}

const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url')

function signature(signingInput: string, secret: string): Buffer {
  return createHmac('sha256', secret).update(signingInput).digest()
}

export function signToken(claims: Claims, secret: string): string {
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url')
  const input = `${header}.${payload}`
  return `${input}.${signature(input, secret).toString('base64url')}`
}

/** The claims of a well-signed, unexpired token, else null. */
export function verifyToken(token: string, secret: string): Claims | null {
  const parts = token.split('.')
  if (parts.length !== 3) return null
  const [head, payload, sig] = parts as [string, string, string]
  const expected = signature(`${head}.${payload}`, secret)
  const given = Buffer.from(sig, 'base64url')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null
  let claims: unknown
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
  } catch {
    return null
  }
  if (typeof claims !== 'object' || claims === null) return null
  const { sub, username, exp } = claims as Record<string, unknown>
  if (typeof sub !== 'string' || typeof username !== 'string' || typeof exp !== 'number') return null
  if (exp * 1000 <= Date.now()) return null
  return { sub, username, exp }
}

/** The token of `Authorization: Bearer <token>`, or '' when the header is absent or another scheme. */
export function bearerToken(header: string | undefined): string {
  if (header === undefined || !/^bearer /i.test(header)) return ''
  return header.slice(7).trim()
}
