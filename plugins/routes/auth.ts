import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { createUser, findUserByUsername, updatePasswordHash } from '../../db/repositories/users.repository.js'
import { HasherBusyError } from '../../src/auth/password.js'
import { AppError } from '../../src/errors.js'
import { ErrorResponse, USERNAME_PATTERN, User } from '../../src/protocol/resources.js'
import type { UserRow } from '../../db/schema.js'

const Credentials = Type.Object({
  username: Type.String({ pattern: USERNAME_PATTERN }),
  password: Type.String({ minLength: 8, maxLength: 256 })
}, { additionalProperties: false })

const LoginBody = Type.Object({
  // Login takes any name, not only well-formed ones: a malformed name is just another failed login.
  username: Type.String({ minLength: 1, maxLength: 64 }),
  password: Type.String({ minLength: 1, maxLength: 256 })
}, { additionalProperties: false })

const LoginResponse = Type.Object({
  token: Type.String(),
  tokenType: Type.Literal('Bearer'),
  expiresIn: Type.Integer(),
  user: User
})

const INVALID_LOGIN = 'invalid username or password'

const authRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db, passwords, loginThrottle, config } = fastify

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
    const token = fastify.jwt.sign({ sub: user.id, username: user.username })
    return { token, tokenType: 'Bearer' as const, expiresIn: config.jwt.ttlSeconds, user: { id: user.id, username: user.username } }
  })
}

export default authRoutes
