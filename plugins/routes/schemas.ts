import { Type } from 'typebox'
import { ErrorResponse, Id, RoomId } from '../../src/protocol/resources.js'

/** Route-level pieces shared by several route groups. */

export const RoomParams = Type.Object({ id: RoomId })
export const UserParams = Type.Object({ id: Id })

/** Error statuses every authenticated route can answer with. */
export const authErrors = { 400: ErrorResponse, 401: ErrorResponse, 500: ErrorResponse, 503: ErrorResponse }
