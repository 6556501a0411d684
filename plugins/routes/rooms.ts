import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { createRoom, listVisibleRooms } from '../../db/repositories/rooms.repository.js'
import { AppError } from '../../src/errors.js'
import { ErrorResponse, Room, RoomId, toRoom } from '../../src/protocol/resources.js'
import { visibleRoom } from '../../src/room-access.js'
import { authenticated, authErrors, RoomParams } from './schemas.js'

const CreateRoomBody = Type.Object({
  id: RoomId,
  title: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  private: Type.Optional(Type.Boolean({ default: false }))
}, { additionalProperties: false })

const roomRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db } = fastify
  fastify.addHook('onRequest', fastify.authenticate)

  fastify.get('/rooms', {
    schema: { tags: ['rooms'], summary: 'Public rooms and the private rooms the caller is in', security: authenticated, response: { 200: Type.Object({ rooms: Type.Array(Room) }), ...authErrors } }
  }, async (request) => {
    return { rooms: (await listVisibleRooms(db, request.user.id)).map((row) => toRoom(row, row.read_seq)) }
  })

  fastify.post('/rooms', {
    schema: { tags: ['rooms'], summary: 'Create a room; the caller becomes a member', security: authenticated, body: CreateRoomBody, response: { 201: Room, 409: ErrorResponse, ...authErrors } }
  }, async (request, reply) => {
    const { id, title, private: isPrivate } = request.body
    const row = await createRoom(db, { id, title: title ?? id, private: isPrivate ?? false, createdBy: request.user.id })
    if (row === null) throw new AppError('conflict', `room ${id} already exists`)
    return reply.code(201).send(toRoom(row, 0))
  })

  fastify.get('/rooms/:id', {
    schema: { tags: ['rooms'], summary: 'A room', description: '`404` also for a private room the caller is not in.', security: authenticated, params: RoomParams, response: { 200: Room, 404: ErrorResponse, ...authErrors } }
  }, async (request) => {
    const { room, readSeq } = await visibleRoom(db, request.params.id, request.user.id)
    return toRoom(room, readSeq)
  })
}

export default roomRoutes
