import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { findUserById } from '../../db/repositories/users.repository.js'
import { AppError } from '../../src/errors.js'
import { ErrorResponse, Id, RoomId } from '../../src/protocol/resources.js'
import { readableRoom } from '../../src/room-access.js'
import { authErrors, RoomParams, UserParams } from './schemas.js'

const RoomPresence = Type.Object({
  room: RoomId,
  online: Type.Array(Type.Object({ userId: Id, username: Type.String() }))
})
const UserPresence = Type.Object({
  userId: Id,
  status: Type.Union([Type.Literal('online'), Type.Literal('offline')]),
  lastSeenAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()])
})

// Live presence arrives with the socket gateway; until then nobody is connected, so everyone is offline.
const presenceRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db } = fastify
  fastify.addHook('onRequest', fastify.authenticate)

  fastify.get('/rooms/:id/presence', {
    schema: { params: RoomParams, response: { 200: RoomPresence, 403: ErrorResponse, 404: ErrorResponse, ...authErrors } }
  }, async (request) => {
    const { room } = await readableRoom(db, request.params.id, request.user.id)
    return { room: room.id, online: [] }
  })

  fastify.get('/users/:id/presence', {
    schema: { params: UserParams, response: { 200: UserPresence, 404: ErrorResponse, ...authErrors } }
  }, async (request) => {
    const user = await findUserById(db, request.params.id)
    if (user === null) throw new AppError('not_found', `user ${request.params.id} not found`)
    return { userId: user.id, status: 'offline' as const, lastSeenAt: user.last_seen_at?.toISOString() ?? null }
  })
}

export default presenceRoutes
