import fastifyJwt from '@fastify/jwt'
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { createLoginThrottle, type LoginThrottle } from '../../src/auth/login-throttle.js'
import { createPasswordHasher, type PasswordHasher } from '../../src/auth/password.js'
import { AppError } from '../../src/errors.js'

/** What a token carries: `sub` is the user id. */
export interface TokenClaims { sub: string, username: string }
export interface Principal { id: string, username: string }

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: TokenClaims
    user: Principal
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook for routes that need `Authorization: Bearer <token>`; sets `request.user`. */
    authenticate: (request: FastifyRequest) => Promise<void>
    passwords: PasswordHasher
    /** Failed logins per address and username, and per address. */
    loginThrottle: LoginThrottle
  }
}

/** Failed logins one address may make across all usernames, as a multiple of the per-username limit. */
const ADDRESS_FAILURE_FACTOR = 20

export default fp(async (fastify) => {
  const { jwt, auth } = fastify.config
  await fastify.register(fastifyJwt, {
    secret: jwt.secret,
    // RFC 8725: pin the algorithm, and refuse tokens that would never expire.
    // @fastify/jwt reads a numeric expiresIn as seconds.
    sign: { algorithm: 'HS256', expiresIn: jwt.ttlSeconds },
    verify: { algorithms: ['HS256'], requiredClaims: ['exp', 'sub'] },
    decode: { complete: false },
    formatUser: (claims) => ({ id: claims.sub, username: claims.username })
  })

  fastify.decorate('authenticate', async (request: FastifyRequest) => {
    if (request.headers.authorization === undefined) throw new AppError('unauthorized', 'missing Authorization: Bearer <token>')
    try {
      await request.jwtVerify()
    } catch (error) {
      const expired = (error as { code?: string }).code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED'
      throw new AppError('unauthorized', expired ? 'token expired' : 'invalid token')
    }
  })
  fastify.decorate('passwords', createPasswordHasher({ logN: auth.scryptLogN, concurrency: auth.hashConcurrency, queue: auth.hashQueue }))
  fastify.decorate('loginThrottle', createLoginThrottle({
    maxFailures: auth.loginMaxFailures,
    addressFactor: ADDRESS_FAILURE_FACTOR,
    windowMs: auth.loginLockoutSeconds * 1000
  }))
}, { name: 'auth', dependencies: ['config'] })
