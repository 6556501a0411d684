import fastifyJwt from '@fastify/jwt'
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { databaseIdentity } from '../../db/repositories/sessions.repository.js'
import { findUserIdentity } from '../../db/repositories/users.repository.js'
import { createLoginThrottle, type LoginThrottle } from '../../src/auth/login-throttle.js'
import { createVerifiedTokens } from '../../src/auth/verified-tokens.js'
import { createPasswordHasher, type PasswordHasher } from '../../src/auth/password.js'
import { AppError } from '../../src/errors.js'
import { ID_PATTERN } from '../../src/protocol/resources.js'

/** What a token carries: `sub` is the user id; `exp` and `aud` are added when it is signed. */
export interface TokenClaims { sub: string, username: string, exp?: number }
/** The caller of an authenticated route; `expiresAt` (ms since the epoch) is when its token expires. */
export interface Principal { id: string, username: string, expiresAt: number }

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: TokenClaims
    user: Principal
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook for routes that need `Authorization: Bearer <token>` of a user that exists; sets `request.user`. */
    authenticate: (request: FastifyRequest) => Promise<void>
    /**
     * onRequest hook that checks the token alone and sets `request.user` from its claims (the
     * username as signed): for a route whose own statement checks that the user still exists.
     */
    authenticateToken: (request: FastifyRequest) => Promise<void>
    passwords: PasswordHasher
    /** Failed logins per address and username, and per address. */
    loginThrottle: LoginThrottle
  }
}

const USER_ID = new RegExp(ID_PATTERN)
const BEARER = /^Bearer\s/i

/** REST tokens remembered once verified (see `createVerifiedTokens`): about 300 bytes each. */
const VERIFIED_TOKENS = 1000

/** Failed logins one address may make across all usernames, as a multiple of the per-username limit. */
const ADDRESS_FAILURE_FACTOR = 20

export default fp(async (fastify) => {
  const { jwt, auth } = fastify.config
  const { db } = fastify
  // A token names the database that issued it, so one signed with the same secret for another
  // database (the embedded one and a Postgres sharing DATA_DIR's dev secret, say) is refused here.
  const audience = `chat:${await databaseIdentity(db)}`
  await fastify.register(fastifyJwt, {
    secret: jwt.secret,
    // RFC 8725: pin the algorithm, and refuse tokens that would never expire.
    // @fastify/jwt reads a numeric expiresIn as seconds.
    sign: { algorithm: 'HS256', expiresIn: jwt.ttlSeconds, aud: audience },
    verify: { algorithms: ['HS256'], requiredClaims: ['exp', 'sub', 'aud'], allowedAud: audience },
    decode: { complete: false }
  })

  const verified = createVerifiedTokens<Principal>(VERIFIED_TOKENS)

  /** The bearer token's claims as a Principal; throws `unauthorized`. The header is read as `request.jwtVerify()` reads it. */
  const principal = (request: FastifyRequest): Principal => {
    const { authorization } = request.headers
    if (authorization === undefined) throw new AppError('unauthorized', 'missing Authorization: Bearer <token>')
    const [, token, ...rest] = authorization.split(' ')
    if (!BEARER.test(authorization) || token === undefined || token === '' || rest.length > 0) throw new AppError('unauthorized', 'invalid token')
    const known = verified.get(token, Date.now())
    if (known !== undefined) return { ...known }
    let claims: TokenClaims
    try {
      // Synchronous with a shared secret, and without request.jwtVerify()'s second decoding of the token.
      claims = fastify.jwt.verify<TokenClaims>(token)
    } catch (error) {
      throw new AppError('unauthorized', (error as { code?: unknown }).code === 'FAST_JWT_EXPIRED' ? 'token expired' : 'invalid token')
    }
    // Signed by us, so well-formed; but a malformed id must be a 401, not a failed query.
    if (typeof claims.sub !== 'string' || !USER_ID.test(claims.sub)) throw new AppError('unauthorized', 'invalid token')
    const checked = { id: claims.sub, username: claims.username, expiresAt: (claims.exp ?? 0) * 1000 }
    verified.set(token, checked, checked.expiresAt)
    return { ...checked }
  }

  fastify.decorate('authenticateToken', async (request: FastifyRequest) => {
    request.user = principal(request)
  })
  fastify.decorate('authenticate', async (request: FastifyRequest) => {
    const { id, expiresAt } = principal(request)
    // One primary-key lookup: a token does not outlive its user.
    const user = await findUserIdentity(db, id)
    if (user === null) throw new AppError('unauthorized', 'the token\'s user does not exist')
    request.user = { ...user, expiresAt }
  })
  fastify.decorate('passwords', createPasswordHasher({ logN: auth.scryptLogN, concurrency: auth.hashConcurrency, queue: auth.hashQueue }))
  fastify.decorate('loginThrottle', createLoginThrottle({
    maxFailures: auth.loginMaxFailures,
    addressFactor: ADDRESS_FAILURE_FACTOR,
    windowMs: auth.loginLockoutSeconds * 1000
  }))
}, { name: 'auth', dependencies: ['config', 'db'] })
