import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type, type Static } from 'typebox'
import { createLogin, deleteExpiredTokens, revokeLoginOf, rotateRefreshToken } from '../../db/repositories/sessions.repository.js'
import { createUser, findUserByUsername, updatePasswordHash, type UserIdentity } from '../../db/repositories/users.repository.js'
import { HasherBusyError } from '../../src/auth/password.js'
import { hashRefreshToken, newRefreshToken } from '../../src/auth/refresh-token.js'
import { AppError } from '../../src/errors.js'
import { ErrorResponse, USERNAME_PATTERN, User } from '../../src/protocol/resources.js'
import type { UserRow } from '../../db/schema.js'
import { authenticated, authErrors } from './schemas.js'

const Credentials = Type.Object({
  username: Type.String({ pattern: USERNAME_PATTERN }),
  password: Type.String({ minLength: 8, maxLength: 256 })
}, { additionalProperties: false })

const LoginBody = Type.Object({
  // Login takes any name, not only well-formed ones: a malformed name is just another failed login.
  username: Type.String({ minLength: 1, maxLength: 64 }),
  password: Type.String({ minLength: 1, maxLength: 256 })
}, { additionalProperties: false })

/** Login and refresh answer alike: an access token and the refresh token to get the next one with. */
const LoginResponse = Type.Object({
  token: Type.String(),
  tokenType: Type.Literal('Bearer'),
  expiresIn: Type.Integer({ description: 'seconds the token lives (JWT_TTL)' }),
  refreshToken: Type.String({ description: 'opaque; spent by POST /auth/refresh' }),
  refreshExpiresIn: Type.Integer({ description: 'seconds the refresh token lives (REFRESH_TTL)' }),
  user: User
})

const RefreshBody = Type.Object({
  // Ours are 43 characters; the bound only keeps junk from being hashed.
  refreshToken: Type.String({ minLength: 1, maxLength: 512 })
}, { additionalProperties: false })

const MeResponse = Type.Object({
  user: User,
  expiresAt: Type.String({ format: 'date-time', description: 'when the token expires' })
})

const INVALID_LOGIN = 'invalid username or password'
/** Expired refresh tokens deleted per login or refresh: bounded work that outpaces their creation (one per call). */
const SWEEP_LIMIT = 100

const authRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db, passwords, loginThrottle, config } = fastify

  /** What login and refresh answer with: a fresh access token for `user`, and its refresh token. */
  const issue = (user: UserIdentity, refreshToken: string): Static<typeof LoginResponse> => ({
    token: fastify.jwt.sign({ sub: user.id, username: user.username }),
    tokenType: 'Bearer',
    expiresIn: config.jwt.ttlSeconds,
    refreshToken,
    refreshExpiresIn: config.jwt.refreshTtlSeconds,
    user: { id: user.id, username: user.username }
  })

  /** Keeps refresh_tokens from growing forever; a failure here is logged, never the caller's problem. */
  const sweep = async (): Promise<void> => {
    try {
      await deleteExpiredTokens(db, SWEEP_LIMIT)
    } catch (error) {
      fastify.log.warn({ err: error }, 'expired refresh tokens not deleted')
    }
  }

  const hashing = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work()
    } catch (error) {
      if (error instanceof HasherBusyError) throw new AppError('unavailable', 'too many logins in progress, retry shortly', 1)
      throw error
    }
  }

  fastify.post('/auth/register', {
    schema: {
      tags: ['auth'],
      summary: 'Create an account',
      description: 'Usernames are unique regardless of case.',
      body: Credentials,
      response: { 201: User, 400: ErrorResponse, 409: ErrorResponse, 503: ErrorResponse }
    }
  }, async (request, reply) => {
    const { username, password } = request.body
    if (await findUserByUsername(db, username) !== null) throw new AppError('conflict', `username ${username} is taken`)
    const hash = await hashing(async () => await passwords.hash(password))
    const user = await createUser(db, username, hash)
    if (user === null) throw new AppError('conflict', `username ${username} is taken`)
    return reply.code(201).send(user)
  })

  fastify.post('/auth/login', {
    schema: {
      tags: ['auth'],
      summary: 'Log in: an access token and a refresh token',
      description: 'Unknown user and wrong password answer alike (`401`); repeated failures per address and username answer `429`.',
      body: LoginBody,
      response: { 200: LoginResponse, 400: ErrorResponse, 401: ErrorResponse, 429: ErrorResponse, 503: ErrorResponse }
    }
  }, async (request) => {
    const { username, password } = request.body
    const admission = loginThrottle.admit(request.ip, username)
    if (!admission.admitted) {
      throw new AppError('rate_limited', 'too many failed logins, try again later', Math.ceil(admission.retryAfterMs / 1000))
    }
    const { attempt } = admission
    let user: UserRow | null
    let ok: boolean
    try {
      user = await findUserByUsername(db, username)
      ok = await hashing(async () => await passwords.verify(password, user?.password_hash ?? null))
    } catch (error) {
      attempt.abandoned()
      throw error
    }
    if (user === null || !ok) {
      attempt.failed()
      throw new AppError('unauthorized', INVALID_LOGIN)
    }
    attempt.succeeded()
    if (passwords.needsRehash(user.password_hash)) {
      await updatePasswordHash(db, user.id, await hashing(async () => await passwords.hash(password)))
    }
    const refresh = newRefreshToken()
    await createLogin(db, user.id, refresh.hash, config.jwt.refreshTtlSeconds)
    await sweep()
    return issue(user, refresh.token)
  })

  fastify.post('/auth/refresh', {
    schema: {
      tags: ['auth'],
      summary: 'Spend a refresh token for a new access token and refresh token',
      description: 'A refresh token sent a second time revokes every refresh token of its login (`401`).',
      body: RefreshBody,
      response: { 200: LoginResponse, 400: ErrorResponse, 401: ErrorResponse, 503: ErrorResponse }
    }
  }, async (request) => {
    const next = newRefreshToken()
    const rotation = await rotateRefreshToken(db, hashRefreshToken(request.body.refreshToken), next.hash, config.jwt.refreshTtlSeconds)
    await sweep()
    switch (rotation.outcome) {
      case 'rotated':
        return issue(rotation.user, next.token)
      case 'reused':
        throw new AppError('unauthorized', 'refresh token already used: every token of its login is revoked, log in again')
      case 'refused':
        throw new AppError('unauthorized', 'invalid, expired or revoked refresh token')
    }
  })

  fastify.post('/auth/logout', {
    schema: {
      tags: ['auth'],
      summary: 'Revoke every refresh token of a login',
      body: RefreshBody,
      response: { 204: Type.Null(), 400: ErrorResponse, 503: ErrorResponse }
    }
  }, async (request, reply) => {
    // 204 for an unknown token too: logging out twice, or after expiry, is not an error.
    await revokeLoginOf(db, hashRefreshToken(request.body.refreshToken))
    return reply.code(204).send(null)
  })

  fastify.get('/auth/me', {
    onRequest: fastify.authenticate,
    schema: { tags: ['auth'], summary: 'The token\'s user and expiry', security: authenticated, response: { 200: MeResponse, ...authErrors } }
  }, async (request) => {
    const { id, username, expiresAt } = request.user
    return { user: { id, username }, expiresAt: new Date(expiresAt).toISOString() }
  })
}

export default authRoutes
