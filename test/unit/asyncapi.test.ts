// The AsyncAPI document is built from the frame schemas themselves, not from copies: each
// message's payload is the very object the codec compiles (client frames) or the server's frames
// are typed with, and a frame schema added to frames.ts is in the document without another line.
import t from 'tap'
import { createAsyncApiDocument, socketFrames } from '../../src/protocol/asyncapi.js'
import * as frames from '../../src/protocol/frames.js'

const document = createAsyncApiDocument({ version: '9.9.9', subprotocol: 'chat.v1' }) as {
  info: { version: string }
  components: { messages: Record<string, { name: string, payload: unknown }> }
  operations: Record<string, { action: string, messages: Array<{ $ref: string }> }>
  channels: { socket: { messages: Record<string, { $ref: string }>, bindings: { ws: { headers: { properties: Record<string, { description: string }> } } } } }
}
const messages = document.components.messages

t.test('every frame schema of frames.ts is a message, split by direction', async (t) => {
  const { client, server } = socketFrames()
  t.same(new Set(client.values()), new Set(Object.values(frames.CLIENT_FRAMES)), 'the client frames are exactly CLIENT_FRAMES')
  const typed = Object.entries(frames).filter(([, value]) => typeof (value as { properties?: { type?: { const?: unknown } } }).properties?.type?.const === 'string')
  t.equal(client.size + server.size, typed.length, 'client and server together are every exported frame schema')
  for (const [name] of typed) t.ok(client.has(name) !== server.has(name), `${name} is in one direction`)
  t.same(Object.keys(messages).sort(), typed.map(([name]) => name).sort(), 'one message per schema, named after it')
})

t.test('payloads are the schemas themselves', async (t) => {
  for (const [type, schema] of Object.entries(frames.CLIENT_FRAMES)) {
    const message = Object.values(messages).find((m) => m.payload === schema)
    t.equal(message?.name, type, `the ${type} message's payload is the object the codec compiles`)
  }
  t.equal(messages.MessageEvent?.payload, frames.MessageEvent, 'and a server frame\'s is its schema')
  t.notMatch(JSON.stringify(document), /~kind|~optional/, 'TypeBox\'s markers are not enumerable: they stay out of the JSON')
})

t.test('operations: the server receives client frames and sends its own', async (t) => {
  const { client, server } = socketFrames()
  const namesOf = (action: string): string[] => Object.values(document.operations)
    .filter((operation) => operation.action === action)
    .flatMap((operation) => operation.messages.map((ref) => ref.$ref.split('/').pop() ?? ''))
  t.same(namesOf('receive').sort(), [...client.keys()].sort())
  t.same(namesOf('send').sort(), [...server.keys()].sort())
  for (const ref of [...namesOf('receive'), ...namesOf('send')]) t.ok(ref in document.channels.socket.messages, `${ref} is a message of the channel`)
  t.equal(document.info.version, '9.9.9')
  t.match(document.channels.socket.bindings.ws.headers.properties['Sec-WebSocket-Protocol']?.description, 'chat.v1, bearer.<jwt>')
})
