import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { addMember, createRoom, listVisibleRooms, removeMember } from '../../db/repositories/rooms.repository.js'
import { findUserById } from '../../db/repositories/users.repository.js'
import { AppError } from '../../src/errors.js'
import { ErrorResponse, Id, Room, RoomId, toRoom } from '../../src/protocol/resources.js'
import { roomForMembership, visibleRoom } from '../../src/room-access.js'
import { authErrors, RoomParams } from './schemas.js'

const CreateRoomBody = Type.Object({
  id: RoomId,
  title: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  private: Type.Optional(Type.Boolean())
}, { additionalProperties: false })

const AddMemberBody = Type.Object({ userId: Id }, { additionalProperties: false })
const MemberParams = Type.Object({ id: RoomId, userId: Id })

const roomRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db } = fastify
  fastify.addHook('onRequest', fastify.authenticate)

  fastify.get('/rooms', {
    schema: { response: { 200: Type.Object({ rooms: Type.Array(Room) }), ...authErrors } }
  }, async (request) => {
    return { rooms: (await listVisibleRooms(db, request.user.id)).map(toRoom) }
  })

  fastify.post('/rooms', {
    schema: { body: CreateRoomBody, response: { 201: Room, 409: ErrorResponse, ...authErrors } }
  }, async (request, reply) => {
    const { id, title, private: isPrivate } = request.body
    const row = await createRoom(db, { id, title: title ?? id, private: isPrivate ?? false, createdBy: request.user.id })
    if (row === null) throw new AppError('conflict', `room ${id} already exists`)
    return reply.code(201).send(toRoom(row))
  })

  fastify.get('/rooms/:id', {
    schema: { params: RoomParams, response: { 200: Room, 404: ErrorResponse, ...authErrors } }
  }, async (request) => {
    return toRoom((await visibleRoom(db, request.params.id, request.user.id)).room)
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

export default roomRoutes
