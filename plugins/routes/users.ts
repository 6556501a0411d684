import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { findUserByUsername } from '../../db/repositories/users.repository.js'
import { User, USERNAME_PATTERN } from '../../src/protocol/resources.js'
import { authenticated, authErrors } from './schemas.js'

const UsersQuery = Type.Object({ username: Type.String({ minLength: 1, maxLength: 256 }) })
const validUsername = new RegExp(USERNAME_PATTERN)

/** Finding people by name. */
const userRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db } = fastify
  fastify.addHook('onRequest', fastify.authenticate)

  fastify.get('/users', {
    schema: { tags: ['users'], summary: 'Find a user by username (exact, any case)', security: authenticated, querystring: UsersQuery, response: { 200: Type.Object({ users: Type.Array(User) }), ...authErrors } }
  }, async (request) => {
    const { username } = request.query
    // A name that could never be registered matches nobody; it need not reach the database.
    const user = validUsername.test(username) ? await findUserByUsername(db, username) : null
    return { users: user === null ? [] : [{ id: user.id, username: user.username }] }
  })
}

export default userRoutes
