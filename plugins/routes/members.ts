import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { addMember, listMembers, removeMember } from '../../db/repositories/rooms.repository.js'
import { findUserById } from '../../db/repositories/users.repository.js'
import { AppError } from '../../src/errors.js'
import { ErrorResponse, Id, RoomId } from '../../src/protocol/resources.js'
import { readableRoom, roomForMembership } from '../../src/room-access.js'
import { authenticated, authErrors, RoomParams } from './schemas.js'

const AddMemberBody = Type.Object({ userId: Id }, { additionalProperties: false })
const MemberParams = Type.Object({ id: RoomId, userId: Id })
/** The query schema's default, which validation fills in; the handler repeats it only because the static type keeps `limit` optional. */
const DEFAULT_LIMIT = 100
const MembersQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: DEFAULT_LIMIT })),
  /** A user id: the page starts after it. */
  after: Type.Optional(Id)
})
const MemberList = Type.Object({
  room: RoomId,
  members: Type.Array(Type.Object({ userId: Id, username: Type.String(), joinedAt: Type.String({ format: 'date-time' }) })),
  hasMore: Type.Boolean()
})

/** Who belongs to a room, and changing that. */
const memberRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db } = fastify
  fastify.addHook('onRequest', fastify.authenticate)

  fastify.get('/rooms/:id/members', {
    schema: { tags: ['members'], summary: 'A room\'s members, by user id', security: authenticated, params: RoomParams, querystring: MembersQuery, response: { 200: MemberList, 403: ErrorResponse, 404: ErrorResponse, ...authErrors } }
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
    schema: { tags: ['members'], summary: 'Add a member', description: 'Anyone may add themselves to a public room; adding someone else takes a member.', security: authenticated, params: RoomParams, body: AddMemberBody, response: { 204: Type.Null(), 403: ErrorResponse, 404: ErrorResponse, ...authErrors } }
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
    schema: { tags: ['members'], summary: 'Remove a member', description: 'Yourself, or anyone if you created the room.', security: authenticated, params: MemberParams, response: { 204: Type.Null(), 403: ErrorResponse, 404: ErrorResponse, ...authErrors } }
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
