import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import { Type } from 'typebox'
import { historyPageJson } from '../../db/repositories/messages.repository.js'
import { AppError } from '../../src/errors.js'
import { ErrorResponse, Message } from '../../src/protocol/resources.js'
import { authenticated, authErrors, RoomParams } from './schemas.js'

const MAX_SEQ = Number.MAX_SAFE_INTEGER
/** The query schema's default, which validation fills in; the handler repeats it only because the static type keeps `limit` optional. */
const DEFAULT_LIMIT = 50

const HistoryQuery = Type.Object({
  before: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_SEQ })),
  after: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_SEQ })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: DEFAULT_LIMIT }))
})

const historyRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db } = fastify
  // The user's existence is checked by the page's own statement, with the room and membership.
  fastify.addHook('onRequest', fastify.authenticateToken)

  fastify.get('/rooms/:id/messages', {
    schema: {
      tags: ['messages'],
      summary: 'A page of a room\'s history, in ascending seq',
      description: 'Without a cursor: the newest `limit`. With `after`: the page after it; otherwise the newest below `before`.',
      security: authenticated,
      params: RoomParams,
      querystring: HistoryQuery,
      response: {
        200: Type.Object({ messages: Type.Array(Message), hasMore: Type.Boolean() }),
        403: ErrorResponse,
        404: ErrorResponse,
        ...authErrors
      }
    }
  }, async (request, reply) => {
    const { before, after, limit = DEFAULT_LIMIT } = request.query
    if (before !== undefined && after !== undefined && after >= before) {
      throw new AppError('bad_request', 'after must be smaller than before')
    }
    const roomId = request.params.id
    const page = await historyPageJson(db, { userId: request.user.id, roomId, before, after, limit })
    switch (page.status) {
      case 'user_gone': throw new AppError('unauthorized', 'the token\'s user does not exist')
      case 'not_found': throw new AppError('not_found', `room ${roomId} not found`)
      case 'forbidden': throw new AppError('forbidden', 'this room is private and you are not a member')
    }
    // The 200 schema's JSON, as text built by the database: Fastify sends a JSON string as it is,
    // which the schema-typed reply cannot express.
    const text: FastifyReply = reply
    return text.type('application/json; charset=utf-8').send(page.json)
  })
}

export default historyRoutes
