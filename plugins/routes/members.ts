import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { addMember, listMembers, removeMember } from '../../db/repositories/rooms.repository.js'
import { findUserById } from '../../db/repositories/users.repository.js'
import { AppError } from '../../src/errors.js'
import { ErrorResponse, Id, RoomId } from '../../src/protocol/resources.js'
import { readableRoom, roomForMembership } from '../../src/room-access.js'
import { authErrors, RoomParams } from './schemas.js'

const AddMemberBody = Type.Object({ userId: Id }, { additionalProperties: false })
const MemberParams = Type.Object({ id: RoomId, userId: Id })
const MembersQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
  /** A user id: the page starts after it. */
  after: Type.Optional(Id)
})
const MemberList = Type.Object({
  room: RoomId,
  members: Type.Array(Type.Object({ userId: Id, username: Type.String(), joinedAt: Type.String({ format: 'date-time' }) })),
  hasMore: Type.Boolean()
})
const DEFAULT_LIMIT = 100

/** Who belongs to a room, and changing that. */
const memberRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db } = fastify
  fastify.addHook('onRequest', fastify.authenticate)

  fastify.get('/rooms/:id/members', {
    schema: { params: RoomParams, querystring: MembersQuery, response: { 200: MemberList, 403: ErrorResponse, 404: ErrorResponse, ...authErrors } }
  }, async (request) => {
    const { limit = DEFAULT_LIMIT, after } = request.query
    const { room } = await readableRoom(db, request.params.id, request.user.id)
    const page = await listMembers(db, { roomId: room.id, after, limit })
    return {
      room: room.id,
      members: page.members.map((m) => ({ userId: m.user_id, username: m.username, joinedAt: m.joined_at.toISOString() })),
      hasMore: page.hasMore
    }
  })

  fastify.post('/rooms/:id/members', {
    schema: { params: RoomParams, body: AddMemberBody, response: { 204: Type.Null(), 403: ErrorResponse, 404: ErrorResponse, ...authErrors } }
  }, async (request, reply) => {
    const caller = request.user.id
    const { userId } = request.body
    const { room, member } = await roomForMembership(db, request.params.id, caller)
    // Public rooms: anyone may add themselves; adding someone else takes a member, as in private rooms.
    if (!member && (room.private || userId !== caller)) {
      throw new AppError('forbidden', room.private ? 'only members may add others to a private room' : 'only members may add others to this room')
    }
    if (await findUserById(db, userId) === null) throw new AppError('not_found', `user ${userId} not found`)
    await addMember(db, room.id, userId)
    return reply.code(204).send(null)
  })

  fastify.delete('/rooms/:id/members/:userId', {
    schema: { params: MemberParams, response: { 204: Type.Null(), 403: ErrorResponse, 404: ErrorResponse, ...authErrors } }
  }, async (request, reply) => {
    const caller = request.user.id
    const { userId } = request.params
    const { room } = await roomForMembership(db, request.params.id, caller)
    if (userId !== caller && room.created_by !== caller) {
      throw new AppError('forbidden', 'only the room creator may remove other members')
    }
    if (await findUserById(db, userId) === null) throw new AppError('not_found', `user ${userId} not found`)
    await removeMember(db, room.id, userId)
    // A private room's messages are for members only, also on sockets already joined.
    if (room.private) fastify.realtime.revoke(room.id, userId)
    return reply.code(204).send(null)
  })
}

export default memberRoutes
