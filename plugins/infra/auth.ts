import fastifyJwt from '@fastify/jwt'
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { databaseIdentity } from '../../db/repositories/sessions.repository.js'
import { findUserIdentity } from '../../db/repositories/users.repository.js'
import { createLoginThrottle, type LoginThrottle } from '../../src/auth/login-throttle.js'
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
    passwords: PasswordHasher
    /** Failed logins per address and username, and per address. */
    loginThrottle: LoginThrottle
  }
}

const USER_ID = new RegExp(ID_PATTERN)

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
    decode: { complete: false },
    formatUser: (claims) => ({ id: claims.sub, username: claims.username, expiresAt: (claims.exp ?? 0) * 1000 })
  })

  fastify.decorate('authenticate', async (request: FastifyRequest) => {
    if (request.headers.authorization === undefined) throw new AppError('unauthorized', 'missing Authorization: Bearer <token>')
    try {
      await request.jwtVerify()
    } catch (error) {
      const expired = (error as { code?: string }).code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED'
      throw new AppError('unauthorized', expired ? 'token expired' : 'invalid token')
    }
    // Signed by us, so well-formed; but a malformed id must be a 401, not a failed query.
    if (typeof request.user.id !== 'string' || !USER_ID.test(request.user.id)) throw new AppError('unauthorized', 'invalid token')
    // One primary-key lookup: a token does not outlive its user.
    const user = await findUserIdentity(db, request.user.id)
    if (user === null) throw new AppError('unauthorized', 'the token\'s user does not exist')
    request.user = { ...user, expiresAt: request.user.expiresAt }
  })
  fastify.decorate('passwords', createPasswordHasher({ logN: auth.scryptLogN, concurrency: auth.hashConcurrency, queue: auth.hashQueue }))
  fastify.decorate('loginThrottle', createLoginThrottle({
    maxFailures: auth.loginMaxFailures,
    addressFactor: ADDRESS_FAILURE_FACTOR,
    windowMs: auth.loginLockoutSeconds * 1000
  }))
}, { name: 'auth', dependencies: ['config', 'db'] })
