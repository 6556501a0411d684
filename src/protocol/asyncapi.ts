import * as frames from './frames.js'
import { CLIENT_FRAMES, CloseCode, MAX_FRAME_BYTES } from './frames.js'

/** The socket protocol as an AsyncAPI 3 document, built from the frame schemas themselves: nothing here restates a shape. */

/** A frame's schema as the codec compiles it (client) or as the server's frames are typed (server): an object with a literal `type`. */
export interface FrameSchema {
  readonly type: 'object'
  readonly properties: { readonly type: { readonly const: string } }
  readonly description?: string
}

export interface SocketFrames {
  /** What a client may send, by the schema's export name in `frames.ts`; the very objects the codec validates with. */
  readonly client: ReadonlyMap<string, FrameSchema>
  /** What the server sends, by export name. */
  readonly server: ReadonlyMap<string, FrameSchema>
}

export interface AsyncApiOptions {
  /** The document's version: the package's. */
  readonly version: string
  /** The subprotocol the server answers with (`chat.v1`). */
  readonly subprotocol: string
}

const clientSchemas: ReadonlySet<unknown> = new Set(Object.values(CLIENT_FRAMES))

function isFrameSchema (value: unknown): value is FrameSchema {
  const type = (value as { properties?: { type?: { const?: unknown } } } | null)?.properties?.type?.const
  return typeof type === 'string'
}

/** Every frame schema `frames.ts` exports, split by direction: one added there is documented without a line here. */
export function socketFrames (): SocketFrames {
  const client = new Map<string, FrameSchema>()
  const server = new Map<string, FrameSchema>()
  for (const [name, value] of Object.entries(frames)) {
    if (isFrameSchema(value)) (clientSchemas.has(value) ? client : server).set(name, value)
  }
  return { client, server }
}

const CHANNEL = 'socket'
const SERVER = 'chat'

export function createAsyncApiDocument (options: AsyncApiOptions): Record<string, unknown> {
  const { client, server } = socketFrames()
  const all = new Map([...client, ...server])
  const closeCodes = Object.entries(CloseCode).map(([meaning, code]) => `\`${code}\` ${meaning}`).join(', ')
  const references = (names: Iterable<string>): Array<{ $ref: string }> =>
    [...names].map((name) => ({ $ref: `#/channels/${CHANNEL}/messages/${name}` }))

  return {
    asyncapi: '3.1.0',
    info: {
      title: 'Chat backend: WebSocket protocol',
      version: options.version,
      description: [
        'The socket half of the chat backend (the REST half is the OpenAPI document at `/docs/json`).',
        'This document describes the server: it receives the client frames and sends the server frames.',
        'Frames are JSON text objects with a `type` and their fields side by side. Every client frame',
        'may carry `ref` (at most 64 characters); the reply to that frame carries the same `ref`.',
        'A frame the server cannot serve is answered with an `error` frame; the socket stays open.'
      ].join('\n')
    },
    defaultContentType: 'application/json',
    servers: {
      [SERVER]: {
        host: '{host}',
        protocol: 'ws',
        description: 'This server (`wss` behind a TLS-terminating proxy).',
        variables: { host: { default: 'localhost:3000', description: 'host and port of the server' } },
        security: [
          { $ref: '#/components/securitySchemes/subprotocol' },
          { $ref: '#/components/securitySchemes/bearerHeader' },
          { $ref: '#/components/securitySchemes/tokenQuery' }
        ]
      }
    },
    channels: {
      [CHANNEL]: {
        address: '/ws',
        title: 'The socket',
        description: [
          'One WebSocket per client, authenticated in the upgrade request: a missing, invalid or expired',
          'token refuses the upgrade with HTTP `401` (`503` while the server stops or the database cannot',
          `say whether the user exists). Frames larger than ${MAX_FRAME_BYTES} bytes close the socket.`,
          `Close codes: ${closeCodes}.`
        ].join(' '),
        servers: [{ $ref: `#/servers/${SERVER}` }],
        messages: Object.fromEntries([...all.keys()].map((name) => [name, { $ref: `#/components/messages/${name}` }])),
        bindings: {
          ws: {
            method: 'GET',
            query: {
              type: 'object',
              properties: { token: { type: 'string', description: 'the access token (JWT), when neither header carries it' } }
            },
            headers: {
              type: 'object',
              properties: {
                'Sec-WebSocket-Protocol': { type: 'string', description: `\`${options.subprotocol}, bearer.<jwt>\` (browsers); the server answers with \`${options.subprotocol}\`` },
                Authorization: { type: 'string', description: '`Bearer <jwt>`' }
              }
            },
            bindingVersion: '0.1.0'
          }
        }
      }
    },
    operations: {
      receiveClientFrames: {
        action: 'receive',
        channel: { $ref: `#/channels/${CHANNEL}` },
        title: 'Client frames',
        summary: 'What a client sends on the socket.',
        messages: references(client.keys())
      },
      sendServerFrames: {
        action: 'send',
        channel: { $ref: `#/channels/${CHANNEL}` },
        title: 'Server frames',
        summary: 'What the server sends on the socket: replies (with the frame\'s `ref`) and events.',
        messages: references(server.keys())
      }
    },
    components: {
      messages: Object.fromEntries([...all].map(([name, schema]) => [name, {
        name: schema.properties.type.const,
        title: `${client.has(name) ? 'client' : 'server'}: ${schema.properties.type.const}`,
        ...(schema.description === undefined ? {} : { summary: schema.description }),
        contentType: 'application/json',
        payload: schema
      }])),
      securitySchemes: {
        subprotocol: {
          type: 'httpApiKey',
          in: 'header',
          name: 'Sec-WebSocket-Protocol',
          description: `The token as the subprotocol \`bearer.<jwt>\`, offered with \`${options.subprotocol}\`: the one way a browser can send it.`
        },
        bearerHeader: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: '`Authorization: Bearer <jwt>`.' },
        tokenQuery: { type: 'httpApiKey', in: 'query', name: 'token', description: '`?token=<jwt>`.' }
      }
    }
  }
}
