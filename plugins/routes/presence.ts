import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { findUserById } from '../../db/repositories/users.repository.js'
import { AppError } from '../../src/errors.js'
import { ErrorResponse, Id, RoomId } from '../../src/protocol/resources.js'
import { readableRoom } from '../../src/room-access.js'
import { authenticated, authErrors, RoomParams, UserParams } from './schemas.js'

const RoomPresence = Type.Object({
  room: RoomId,
  online: Type.Array(Type.Object({ userId: Id, username: Type.String() }))
})
const UserPresence = Type.Object({
  userId: Id,
  status: Type.Union([Type.Literal('online'), Type.Literal('offline')]),
  lastSeenAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()])
})

/** Who is online in a room, and whether a user is; answered from the realtime side's presence. */
const presenceRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db, realtime } = fastify
  fastify.addHook('onRequest', fastify.authenticate)

  fastify.get('/rooms/:id/presence', {
    schema: { tags: ['presence'], summary: 'Who is online in a room', security: authenticated, params: RoomParams, response: { 200: RoomPresence, 403: ErrorResponse, 404: ErrorResponse, ...authErrors } }
  }, async (request) => {
    const { room } = await readableRoom(db, request.params.id, request.user.id)
    return { room: room.id, online: await realtime.presence.online(room.id) }
  })

  fastify.get('/users/:id/presence', {
    schema: { tags: ['presence'], summary: 'Whether a user is online', security: authenticated, params: UserParams, response: { 200: UserPresence, 404: ErrorResponse, ...authErrors } }
  }, async (request) => {
    const user = await findUserById(db, request.params.id)
    if (user === null) throw new AppError('not_found', `user ${request.params.id} not found`)
    // An online user is being seen right now; last_seen_at is when they last came or went.
    if (await realtime.presence.isOnline(user.id)) return { userId: user.id, status: 'online' as const, lastSeenAt: new Date().toISOString() }
    return { userId: user.id, status: 'offline' as const, lastSeenAt: user.last_seen_at?.toISOString() ?? null }
  })
}

export default presenceRoutes
