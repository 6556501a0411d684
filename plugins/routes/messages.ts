import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { findMessage, type InsertOutcome } from '../../db/repositories/messages.repository.js'
import { AppError } from '../../src/errors.js'
import { asFailure } from '../../src/pipeline/failures.js'
import { createdMessage } from '../../src/pipeline/pipeline.js'
import { MessageFrame } from '../../src/protocol/frames.js'
import { ErrorResponse, Message, toMessage } from '../../src/protocol/resources.js'
import { createUserRateLimit } from '../../src/user-rate-limit.js'
import { authenticated, authErrors, RoomParams } from './schemas.js'

/** The socket frame's fields and limits, nothing else. */
const SendBody = Type.Object({ body: MessageFrame.properties.body, clientMsgId: MessageFrame.properties.clientMsgId }, { additionalProperties: false })

/** Sending over REST: the socket's message path (group commit, then the room's `message`), answered with the Message. */
const messageRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { db, realtime, meter } = fastify
  // A user's requests on this node, at the rate one socket may send frames.
  const limit = createUserRateLimit(fastify.config.socket)
  fastify.addHook('onRequest', fastify.authenticate)

  fastify.post('/rooms/:id/messages', {
    schema: {
      tags: ['messages'],
      summary: 'Send a message without a socket',
      description: '`201` once stored and published to the room. The same `clientMsgId` again: `200` with the original, nothing stored twice. `503`: not stored, retry with the same `clientMsgId`.',
      security: authenticated,
      params: RoomParams,
      body: SendBody,
      response: { 200: Message, 201: Message, 403: ErrorResponse, 404: ErrorResponse, 429: ErrorResponse, ...authErrors }
    },
    // The socket's ack latency, over REST: from the request's arrival to its answer sent.
    onResponse: (request, reply, done) => {
      if (reply.statusCode < 300) meter.acked('rest', reply.elapsedTime / 1000)
      done()
    }
  }, async (request, reply) => {
    const { user } = request
    const wait = limit.take(user.id)
    if (wait > 0) throw new AppError('rate_limited', 'too many messages, slow down', wait)
    const roomId = request.params.id
    const { body } = request.body
    const clientMsgId = request.body.clientMsgId ?? null
    let outcome: InsertOutcome
    try {
      outcome = await realtime.messages.store(user, roomId, body, clientMsgId, null)
    } catch (error) {
      throw asFailure(error, request.log, 'message not stored')
    }
    switch (outcome.status) {
      case 'not_found':
        throw new AppError('not_found', `room ${roomId} not found`)
      case 'forbidden':
        throw new AppError('forbidden', 'this room is private and you are not a member')
      case 'created':
        return await reply.code(201).send(createdMessage(user, roomId, body, clientMsgId, outcome))
    }
    // A repeat: the original may differ from this request's body, so it is read back.
    const original = await findMessage(db, outcome.id)
    if (original === null) throw new Error(`message ${outcome.id} was reported stored but is not found`)
    return toMessage(original)
  })
}

export default messageRoutes
