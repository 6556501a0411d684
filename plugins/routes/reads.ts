import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { listReceipts } from '../../db/repositories/reads.repository.js'
import { AppError } from '../../src/errors.js'
import { asFailure } from '../../src/pipeline/failures.js'
import { ReadEvent, ReadFrame, ReceiptEvent } from '../../src/protocol/frames.js'
import { ErrorResponse, RoomId } from '../../src/protocol/resources.js'
import { readableRoom } from '../../src/room-access.js'
import { authenticated, authErrors, RoomParams } from './schemas.js'

/** The `read` frame's field and limits. */
const ReadBody = Type.Object({ seq: ReadFrame.properties.seq }, { additionalProperties: false })
const ReadResponse = Type.Object({ room: RoomId, readSeq: ReadEvent.properties.readSeq })
const Receipt = Type.Object({ userId: ReceiptEvent.properties.userId, username: ReceiptEvent.properties.username, readSeq: ReceiptEvent.properties.readSeq })
/** The query schema's default, which validation fills in; the handler repeats it only because the static type keeps `limit` optional. */
const DEFAULT_LIMIT = 100
const ReceiptsQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: DEFAULT_LIMIT })) })

/** Read positions over REST: moving one's own (announced to the room as `receipt`), and a room's readers. */
const readRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db, realtime } = fastify
  fastify.addHook('onRequest', fastify.authenticate)

  fastify.put('/rooms/:id/read', {
    schema: { tags: ['read positions'], summary: 'Move the caller\'s read position', description: 'It becomes `max(current, min(seq, lastSeq))`; if it moved, the room\'s sockets get `receipt`.', security: authenticated, params: RoomParams, body: ReadBody, response: { 200: ReadResponse, 403: ErrorResponse, 404: ErrorResponse, ...authErrors } }
  }, async (request) => {
    const { room } = await readableRoom(db, request.params.id, request.user.id)
    let readSeq: number | null
    try {
      readSeq = await realtime.reads.move(request.user, room.id, request.body.seq, null)
    } catch (error) {
      throw asFailure(error, request.log, 'read position not stored')
    }
    if (readSeq === null) throw new AppError('not_found', `room ${room.id} not found`)
    return { room: room.id, readSeq }
  })

  fastify.get('/rooms/:id/receipts', {
    schema: {
      tags: ['read positions'],
      summary: 'Read positions above 0 in a room, highest first',
      security: authenticated,
      params: RoomParams,
      querystring: ReceiptsQuery,
      response: { 200: Type.Object({ room: RoomId, receipts: Type.Array(Receipt) }), 403: ErrorResponse, 404: ErrorResponse, ...authErrors }
    }
  }, async (request) => {
    const { room } = await readableRoom(db, request.params.id, request.user.id)
    return { room: room.id, receipts: await listReceipts(db, room.id, request.query.limit ?? DEFAULT_LIMIT) }
  })
}

export default readRoutes
