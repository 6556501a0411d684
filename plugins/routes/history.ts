import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { listMessages } from '../../db/repositories/messages.repository.js'
import { AppError } from '../../src/errors.js'
import { ErrorResponse, Message, toMessage } from '../../src/protocol/resources.js'
import { readableRoom } from '../../src/room-access.js'
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
  fastify.addHook('onRequest', fastify.authenticate)

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
  }, async (request) => {
    const { before, after, limit = DEFAULT_LIMIT } = request.query
    if (before !== undefined && after !== undefined && after >= before) {
      throw new AppError('bad_request', 'after must be smaller than before')
    }
    const { room } = await readableRoom(db, request.params.id, request.user.id)
    const page = await listMessages(db, { roomId: room.id, before, after, limit })
    return { messages: page.messages.map(toMessage), hasMore: page.hasMore }
  })
}

export default historyRoutes
