import { Type, type Static } from 'typebox'
import { Message, RoomId, User } from './resources.js'

/** The socket frames of API.md: flat JSON objects with a `type`. Every text field also passes `textFault` (no NUL, no lone surrogates), checked in the codec. */

/** Frames larger than this close the socket with 1009 (API.md). */
export const MAX_FRAME_BYTES = 64 * 1024

const Ref = Type.String({ maxLength: 64, description: 'echoed by the reply to this frame' })

export const JoinFrame = Type.Object({
  type: Type.Literal('join'),
  room: RoomId,
  afterSeq: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'replay every stored message with a higher seq first' })),
  ref: Type.Optional(Ref)
}, { description: 'Join a room: answered with `joined`, after the replay `afterSeq` asks for.' })
export const LeaveFrame = Type.Object({ type: Type.Literal('leave'), room: RoomId, ref: Type.Optional(Ref) }, { description: 'Leave a room: answered with `left`.' })
export const MessageFrame = Type.Object({
  type: Type.Literal('message'),
  room: RoomId,
  body: Type.String({ minLength: 1, maxLength: 4000 }),
  clientMsgId: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'idempotency key: the same one again is answered with the original `ack`' })),
  ref: Type.Optional(Ref)
}, { description: 'Send a message to a joined room: answered with `ack` once it is stored.' })
export const TypingFrame = Type.Object({ type: Type.Literal('typing'), room: RoomId, typing: Type.Boolean(), ref: Type.Optional(Ref) }, {
  description: 'Start or stop typing in a joined room: no reply; the room\'s other sockets get `typing`.'
})
export const PingFrame = Type.Object({ type: Type.Literal('ping'), ref: Type.Optional(Ref) }, { description: 'Answered with `pong`.' })
export const ReadFrame = Type.Object({
  type: Type.Literal('read'),
  room: RoomId,
  seq: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  ref: Type.Optional(Ref)
}, { description: 'Move the sender\'s read position in a joined room (clamped to the room\'s lastSeq, never backwards): answered with `read`.' })
export const AuthFrame = Type.Object({
  type: Type.Literal('auth'),
  token: Type.String({ minLength: 1, maxLength: 8192 }),
  ref: Type.Optional(Ref)
}, { description: 'A fresh access token for the socket\'s user: the socket then lives until the later expiry. Answered with `authed`.' })

export type JoinFrame = Static<typeof JoinFrame>
export type LeaveFrame = Static<typeof LeaveFrame>
export type MessageFrame = Static<typeof MessageFrame>
export type TypingFrame = Static<typeof TypingFrame>
export type PingFrame = Static<typeof PingFrame>
export type ReadFrame = Static<typeof ReadFrame>
export type AuthFrame = Static<typeof AuthFrame>
export type ClientFrame = JoinFrame | LeaveFrame | MessageFrame | TypingFrame | PingFrame | ReadFrame | AuthFrame

/** Each client frame's schema by its `type`, so a frame is checked against one schema, not a union. */
export const CLIENT_FRAMES = {
  join: JoinFrame,
  leave: LeaveFrame,
  message: MessageFrame,
  typing: TypingFrame,
  ping: PingFrame,
  read: ReadFrame,
  auth: AuthFrame
} as const

/** Close codes of API.md, plus 1013 (IANA "try again later") for a socket too slow to keep up. */
export const CloseCode = {
  shuttingDown: 1001,
  policy: 1008,
  tooBig: 1009,
  internal: 1011,
  slowConsumer: 1013
} as const

export const SocketErrorCode = Type.Union([
  Type.Literal('bad_request'),
  Type.Literal('unauthorized'),
  Type.Literal('forbidden'),
  Type.Literal('not_found'),
  Type.Literal('rate_limited'),
  Type.Literal('unavailable'),
  Type.Literal('internal')
])
export type SocketErrorCode = Static<typeof SocketErrorCode>

const OptionalRef = { ref: Type.Optional(Type.String()) }
const OnlineUser = Type.Object({ userId: Type.String(), username: Type.String() })

export const WelcomeEvent = Type.Object({
  type: Type.Literal('welcome'),
  user: User,
  heartbeat: Type.Integer({ description: 'seconds' }),
  expiresAt: Type.String({ format: 'date-time', description: 'when the socket closes with 1008 unless an `auth` frame moves it' })
}, { description: 'The first frame after the upgrade.' })
export const JoinedEvent = Type.Object({
  type: Type.Literal('joined'),
  room: RoomId,
  lastSeq: Type.Integer(),
  online: Type.Array(OnlineUser),
  readSeq: Type.Integer({ minimum: 0 }),
  ...OptionalRef
}, { description: 'The reply to `join`.' })
export const LeftEvent = Type.Object({
  type: Type.Literal('left'),
  room: RoomId,
  reason: Type.Optional(Type.Literal('removed', { description: 'the server ended the membership: the user was removed from a private room' })),
  ...OptionalRef
}, { description: 'The reply to `leave`, or the server ending a membership.' })
export const AckEvent = Type.Object({
  type: Type.Literal('ack'),
  room: RoomId,
  id: Type.String(),
  seq: Type.Integer(),
  clientMsgId: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
  ...OptionalRef
}, { description: 'The reply to `message`, once the message is stored.' })
export const MessageEvent = Type.Object({ type: Type.Literal('message'), ...Message.properties }, {
  description: 'A message stored in a joined room, to every socket there but the sender\'s (which gets `ack`).'
})
export const TypingEvent = Type.Object({ type: Type.Literal('typing'), room: RoomId, userId: Type.String(), username: Type.String(), typing: Type.Boolean() }, {
  description: 'Another socket in the room started or stopped typing; a start not refreshed within 5 s is followed by `typing: false`.'
})
export const PresenceEvent = Type.Object({
  type: Type.Literal('presence'),
  room: RoomId,
  userId: Type.String(),
  username: Type.String(),
  status: Type.Union([Type.Literal('online'), Type.Literal('offline')])
}, { description: 'A user\'s first socket joined the room, or their last one left, closed or missed its heartbeat.' })
export const ReadEvent = Type.Object({ type: Type.Literal('read'), room: RoomId, readSeq: Type.Integer({ minimum: 0 }), ...OptionalRef }, {
  description: 'The reply to `read`: the reader\'s position after the move (unchanged when the frame asked for less).'
})
export const ReceiptEvent = Type.Object({ type: Type.Literal('receipt'), room: RoomId, userId: Type.String(), username: Type.String(), readSeq: Type.Integer({ minimum: 0 }) }, {
  description: 'A member\'s read position in the room moved (never for the author\'s own message: that is the `ack`).'
})
export const AuthedEvent = Type.Object({ type: Type.Literal('authed'), expiresAt: Type.String({ format: 'date-time' }), ...OptionalRef }, {
  description: 'The reply to `auth`: the socket\'s expiry now.'
})
export const PongEvent = Type.Object({ type: Type.Literal('pong'), ...OptionalRef }, { description: 'The reply to `ping`.' })
export const ErrorEvent = Type.Object({ type: Type.Literal('error'), code: SocketErrorCode, message: Type.String(), ...OptionalRef }, {
  description: 'A frame could not be served; the socket stays open. `ref` is the frame\'s, when it carried a usable one.'
})

export type WelcomeEvent = Static<typeof WelcomeEvent>
export type JoinedEvent = Static<typeof JoinedEvent>
export type LeftEvent = Static<typeof LeftEvent>
export type AckEvent = Static<typeof AckEvent>
export type MessageEvent = Static<typeof MessageEvent>
export type TypingEvent = Static<typeof TypingEvent>
export type PresenceEvent = Static<typeof PresenceEvent>
export type ReadEvent = Static<typeof ReadEvent>
export type ReceiptEvent = Static<typeof ReceiptEvent>
export type AuthedEvent = Static<typeof AuthedEvent>
export type PongEvent = Static<typeof PongEvent>
export type ErrorEvent = Static<typeof ErrorEvent>
export type ServerFrame = WelcomeEvent | JoinedEvent | LeftEvent | AckEvent | MessageEvent | TypingEvent | PresenceEvent |
  ReadEvent | ReceiptEvent | AuthedEvent | PongEvent | ErrorEvent
