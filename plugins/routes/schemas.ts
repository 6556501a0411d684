import type { FastifySchema } from 'fastify'
import { Type } from 'typebox'
import { ErrorResponse, Id, RoomId } from '../../src/protocol/resources.js'

/** Route-level pieces shared by several route groups. */

export const RoomParams = Type.Object({ id: RoomId })
export const UserParams = Type.Object({ id: Id })

/** Error statuses every authenticated route can answer with. */
export const authErrors = { 400: ErrorResponse, 401: ErrorResponse, 500: ErrorResponse, 503: ErrorResponse }

/** The OpenAPI security scheme of `Authorization: Bearer <token>`. */
export const BEARER_AUTH = 'bearerAuth'
/** The `security` of a route that runs `fastify.authenticate`; the docs test checks each one answers 401 without a token. */
export const authenticated = [{ [BEARER_AUTH]: [] }]

/**
 * The schema of a route that serves a document or a page rather than the REST API's JSON: listed
 * under `documents` with its media type and no security. It only describes: these handlers send
 * strings or Buffers, which Fastify's serializer leaves alone.
 */
export function documentRoute (summary: string, mediaType: string, type: 'string' | 'object' = 'string'): FastifySchema {
  const schema = type === 'object' ? { type, additionalProperties: true } : { type }
  return { tags: ['documents'], summary, response: { 200: { description: 'OK', content: { [mediaType]: { schema } } } } }
}
