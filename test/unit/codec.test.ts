import t, { type Test } from 'tap'
import { decodeFrame, encodeFrame, type Decoded } from '../../src/protocol/codec.js'
import { CLIENT_FRAMES } from '../../src/protocol/frames.js'

/** An ArrayBuffer holding exactly the UTF-8 bytes of `text`, as uWS hands a message over. */
function bytes (text: string): ArrayBuffer {
  const view = new TextEncoder().encode(text)
  return view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength)
}

const decode = (value: unknown): Decoded => decodeFrame(bytes(JSON.stringify(value)), false)
const decodeText = (text: string): Decoded => decodeFrame(bytes(text), false)

/** Asserts the frame decodes and comes back as sent. */
function accepts (t: Test, value: Record<string, unknown>, what?: string): void {
  const decoded = decode(value)
  if (!decoded.ok) {
    t.fail(`${what ?? JSON.stringify(value).slice(0, 100)}: refused with ${decoded.message}`)
    return
  }
  t.same(decoded.frame, value, what ?? `accepts ${JSON.stringify(value).slice(0, 100)}`)
}

/** Asserts the frame is refused with exactly this message and (no) ref. */
function refuses (t: Test, value: unknown, message: string, ref?: string, what?: string): void {
  t.same(decode(value), ref === undefined ? { ok: false, message, ref: undefined } : { ok: false, message, ref }, what ?? message)
}

const EMOJI = '\u{1F600}'

t.test('every client frame type has a schema', async (t) => {
  t.same(Object.keys(CLIENT_FRAMES).sort(), ['auth', 'join', 'leave', 'message', 'ping', 'read', 'typing'])
})

t.test('valid frames of every type decode to themselves', async (t) => {
  accepts(t, { type: 'ping' })
  accepts(t, { type: 'ping', ref: 'r1' })
  accepts(t, { type: 'join', room: 'general' })
  accepts(t, { type: 'join', room: 'general', afterSeq: 0, ref: 'j' })
  accepts(t, { type: 'join', room: 'general', afterSeq: Number.MAX_SAFE_INTEGER })
  accepts(t, { type: 'leave', room: 'general', ref: 'l' })
  accepts(t, { type: 'message', room: 'general', body: 'hello' })
  accepts(t, { type: 'message', room: 'general', body: 'hello', clientMsgId: 'c-1', ref: 'm' })
  accepts(t, { type: 'typing', room: 'general', typing: true })
  accepts(t, { type: 'typing', room: 'general', typing: false })
})

t.test('the decoded frame is the parsed object, nothing dropped', async (t) => {
  const decoded = decode({ type: 'message', room: 'r', body: 'b', extra: { nested: [1] } })
  t.same(decoded, { ok: true, frame: { type: 'message', room: 'r', body: 'b', extra: { nested: [1] } } })
})

t.test('room ids: 1-64 of A-Z a-z 0-9 _ . : -', async (t) => {
  accepts(t, { type: 'leave', room: 'a' }, 'one character')
  accepts(t, { type: 'leave', room: 'x'.repeat(64) }, '64 characters')
  accepts(t, { type: 'leave', room: 'Az09_.:-' }, 'every allowed punctuation')
  const pattern = 'room: must match pattern "^[A-Za-z0-9_.:-]{1,64}$"'
  refuses(t, { type: 'leave', room: '' }, pattern, undefined, 'empty')
  refuses(t, { type: 'leave', room: 'x'.repeat(65) }, pattern, undefined, '65 characters')
  for (const room of ['a b', 'a/b', 'a#b', 'é', 'a\nb', 'a\u0000b', 'room!']) {
    refuses(t, { type: 'join', room }, pattern, undefined, `refuses ${JSON.stringify(room)}`)
  }
  refuses(t, { type: 'typing', room: 5, typing: true }, 'room: must be string')
  refuses(t, { type: 'message', room: null, body: 'b' }, 'room: must be string')
})

t.test('a missing required field is named', async (t) => {
  refuses(t, { type: 'join' }, 'must have required properties room')
  refuses(t, { type: 'leave' }, 'must have required properties room')
  refuses(t, { type: 'message', room: 'r' }, 'must have required properties body')
  refuses(t, { type: 'typing', room: 'r' }, 'must have required properties typing')
  const both = decode({ type: 'message' })
  t.equal(both.ok, false)
  if (!both.ok) t.match(both.message, /^must have required properties .*\broom\b/, 'the first missing field at least')
})

t.test('afterSeq is a non-negative integer', async (t) => {
  accepts(t, { type: 'join', room: 'r', afterSeq: 42 })
  refuses(t, { type: 'join', room: 'r', afterSeq: -1 }, 'afterSeq: must be >= 0')
  refuses(t, { type: 'join', room: 'r', afterSeq: 1.5 }, 'afterSeq: must be integer')
  refuses(t, { type: 'join', room: 'r', afterSeq: '3' }, 'afterSeq: must be integer')
  refuses(t, { type: 'join', room: 'r', afterSeq: null }, 'afterSeq: must be integer')
  t.equal(decodeText('{"type":"join","room":"r","afterSeq":1e300}').ok, false, 'beyond any sequence number')
})

t.test('message body: 1-4000 characters counted in code points', async (t) => {
  accepts(t, { type: 'message', room: 'r', body: 'x' }, 'one character')
  accepts(t, { type: 'message', room: 'r', body: 'x'.repeat(4000) }, '4000 characters')
  accepts(t, { type: 'message', room: 'r', body: EMOJI.repeat(4000) }, '4000 emoji (8000 UTF-16 units)')
  accepts(t, { type: 'message', room: 'r', body: ' \n\t' }, 'whitespace is a body')
  const tooLong = 'body: must not have more than 4000 characters'
  refuses(t, { type: 'message', room: 'r', body: 'x'.repeat(4001) }, tooLong, undefined, '4001 characters')
  refuses(t, { type: 'message', room: 'r', body: EMOJI.repeat(4001) }, tooLong, undefined, '4001 emoji')
  refuses(t, { type: 'message', room: 'r', body: '' }, 'body: must not have fewer than 1 characters')
  refuses(t, { type: 'message', room: 'r', body: 42 }, 'body: must be string')
})

t.test('no NUL in any text field', async (t) => {
  const nul = 'must not contain NUL (\\u0000)'
  refuses(t, { type: 'message', room: 'r', body: 'a\u0000b' }, `body: ${nul}`)
  refuses(t, { type: 'message', room: 'r', body: '\u0000' }, `body: ${nul}`, undefined, 'only a NUL')
  refuses(t, { type: 'message', room: 'r', body: 'ok', clientMsgId: 'c\u0000' }, `clientMsgId: ${nul}`)
  refuses(t, { type: 'auth', token: 'a.b\u0000.c', ref: 'a' }, `token: ${nul}`, 'a', 'in an auth token')
  refuses(t, { type: 'ping', ref: 'p\u0000' }, `ref: ${nul}`, 'p\u0000', 'in a ref')
  t.equal(decodeText('{"type":"message","room":"r","body":"a\\u0000b"}').ok, false, 'written as a JSON escape')
})

t.test('clientMsgId: 1-64 characters when present', async (t) => {
  accepts(t, { type: 'message', room: 'r', body: 'b', clientMsgId: 'x' })
  accepts(t, { type: 'message', room: 'r', body: 'b', clientMsgId: 'x'.repeat(64) })
  refuses(t, { type: 'message', room: 'r', body: 'b', clientMsgId: '' }, 'clientMsgId: must not have fewer than 1 characters')
  refuses(t, { type: 'message', room: 'r', body: 'b', clientMsgId: 'x'.repeat(65) }, 'clientMsgId: must not have more than 64 characters')
  refuses(t, { type: 'message', room: 'r', body: 'b', clientMsgId: 7 }, 'clientMsgId: must be string')
  refuses(t, { type: 'message', room: 'r', body: 'b', clientMsgId: null }, 'clientMsgId: must be string')
})

t.test('typing is a boolean', async (t) => {
  refuses(t, { type: 'typing', room: 'r', typing: 'true' }, 'typing: must be boolean')
  refuses(t, { type: 'typing', room: 'r', typing: 1 }, 'typing: must be boolean')
  refuses(t, { type: 'typing', room: 'r', typing: null }, 'typing: must be boolean')
})

t.test('ref: a string of at most 64 characters', async (t) => {
  accepts(t, { type: 'ping', ref: '' })
  accepts(t, { type: 'ping', ref: 'x'.repeat(64) })
  refuses(t, { type: 'ping', ref: 'x'.repeat(65) }, 'ref: must not have more than 64 characters')
  refuses(t, { type: 'ping', ref: 5 }, 'ref: must be string')
  refuses(t, { type: 'join', room: 'r', ref: ['a'] }, 'ref: must be string')
})

t.test('a failure echoes ref only when it is a string of at most 64 characters', async (t) => {
  refuses(t, { type: 'join', ref: 'r-1' }, 'must have required properties room', 'r-1')
  refuses(t, { type: 'join', ref: '' }, 'must have required properties room', '', 'an empty ref is still echoed')
  refuses(t, { type: 'join', ref: 'x'.repeat(64) }, 'must have required properties room', 'x'.repeat(64))
  refuses(t, { type: 'nope', ref: 'r-2' }, 'unknown frame type "nope"', 'r-2', 'also for an unknown type')
  refuses(t, { ref: 'r-3' }, 'unknown frame type null', 'r-3', 'and a missing type')
  refuses(t, { type: 'ping', ref: 'x'.repeat(65) }, 'ref: must not have more than 64 characters', undefined, 'too long: not echoed')
  refuses(t, { type: 'join', ref: 17 }, 'must have required properties room', undefined, 'a number: not echoed')
  refuses(t, { type: 'join', ref: { a: 1 } }, 'must have required properties room', undefined, 'an object: not echoed')
  refuses(t, { type: 'join', ref: null }, 'must have required properties room', undefined, 'null: not echoed')
})

t.test('a failure echoes a ref of up to 64 code points, the same length the schema accepts', async (t) => {
  // The schema counts ref's maxLength in code points: 40 emoji are 80 UTF-16 units but a valid ref.
  accepts(t, { type: 'ping', ref: EMOJI.repeat(40) }, 'the schema accepts this ref')
  refuses(t, { type: 'join', ref: EMOJI.repeat(40) }, 'must have required properties room', EMOJI.repeat(40))
})

t.test('binary frames are refused before parsing', async (t) => {
  t.same(decodeFrame(bytes('{"type":"ping","ref":"x"}'), true), { ok: false, message: 'binary frames are not supported: send JSON text' },
    'even a valid frame; no ref')
  t.same(decodeFrame(new ArrayBuffer(0), true), { ok: false, message: 'binary frames are not supported: send JSON text' })
})

t.test('text that is not JSON', async (t) => {
  for (const text of ['', 'ping', '{', '{"type":"ping",}', "{'type':'ping'}", '{"type":"ping"} x', '\uFEFF{"type":"ping"}']) {
    t.same(decodeText(text), { ok: false, message: 'a frame must be JSON' }, `refuses ${JSON.stringify(text)}`)
  }
  t.same(decodeFrame(new Uint8Array([0xff, 0xfe, 0x7b]).buffer, false), { ok: false, message: 'a frame must be JSON' }, 'invalid UTF-8')
})

t.test('JSON that is not an object', async (t) => {
  for (const text of ['[]', '[{"type":"ping"}]', 'null', '0', '42', '"ping"', 'true', 'false']) {
    t.same(decodeText(text), { ok: false, message: 'a frame must be a JSON object with a "type"' }, `refuses ${text}`)
  }
})

t.test('unknown or missing type', async (t) => {
  refuses(t, {}, 'unknown frame type null')
  refuses(t, { type: null }, 'unknown frame type null')
  refuses(t, { type: 'PING' }, 'unknown frame type "PING"', undefined, 'types are case-sensitive')
  refuses(t, { type: 'welcome' }, 'unknown frame type "welcome"', undefined, 'a server frame type')
  refuses(t, { type: 7 }, 'unknown frame type 7')
  refuses(t, { type: ['ping'] }, 'unknown frame type ["ping"]')
  refuses(t, { type: { type: 'ping' } }, 'unknown frame type {"type":"ping"}')
  for (const type of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
    refuses(t, { type }, `unknown frame type ${JSON.stringify(type)}`, undefined, `inherited name ${type}`)
  }
})

t.test('extra unknown fields are accepted', async (t) => {
  accepts(t, { type: 'ping', client: 'web', v: 2 })
  accepts(t, { type: 'typing', room: 'r', typing: true, user: 'someone else' })
})

t.test('__proto__ keys are harmless', async (t) => {
  const decoded = decodeText('{"type":"ping","__proto__":{"type":"join","polluted":true}}')
  t.equal(decoded.ok, true, 'an extra field like any other')
  if (decoded.ok) {
    t.equal(decoded.frame.type, 'ping')
    t.equal(Object.getPrototypeOf(decoded.frame), Object.prototype, 'the prototype is untouched')
    t.equal((decoded.frame as { polluted?: unknown }).polluted, undefined)
  }
  t.same(decodeText('{"__proto__":{"type":"ping"}}'), { ok: false, message: 'unknown frame type null', ref: undefined },
    'a type inherited through __proto__ does not count')
  t.same(decodeText('{"__proto__":{"ref":"r"},"type":"join"}'), { ok: false, message: 'must have required properties room', ref: undefined },
    'nor does a ref')
  t.equal(decodeText('{"type":"join","__proto__":{"room":"r"}}').ok, false, 'nor a required field')
  t.equal(({} as { polluted?: unknown }).polluted, undefined, 'Object.prototype is not polluted')
})

t.test('the bytes are read as UTF-8', async (t) => {
  accepts(t, { type: 'message', room: 'r', body: 'héllo wörld ✓ ' + EMOJI })
  t.same(decodeFrame(bytes('  {"type":"ping"}\n'), false), { ok: true, frame: { type: 'ping' } }, 'surrounding whitespace is fine')
})

t.test('encodeFrame is JSON text', async (t) => {
  const frame = { type: 'error' as const, code: 'bad_request' as const, message: 'a "quoted" thing', ref: 'r' }
  t.equal(encodeFrame(frame), '{"type":"error","code":"bad_request","message":"a \\"quoted\\" thing","ref":"r"}')
  t.equal(encodeFrame({ type: 'pong' }), '{"type":"pong"}')
})

t.test('half a surrogate pair (possible through JSON escapes) is refused in every text field', async (t) => {
  const lone = 'must be well-formed Unicode (no lone surrogates)'
  refuses(t, { type: 'message', room: 'r', body: 'a\uD800b', ref: 'x' }, `body: ${lone}`, 'x', 'a lone high surrogate in the body')
  refuses(t, { type: 'message', room: 'r', body: 'a\uDC00', clientMsgId: 'c' }, `body: ${lone}`, undefined, 'a lone low surrogate')
  refuses(t, { type: 'message', room: 'r', body: 'fine', clientMsgId: '\uD83D' }, `clientMsgId: ${lone}`, undefined, 'in the clientMsgId')
  refuses(t, { type: 'auth', token: '\uDFFF' }, `token: ${lone}`, undefined, 'in an auth token')
  accepts(t, { type: 'message', room: 'r', body: `pair ${EMOJI}`, clientMsgId: EMOJI }, 'a whole pair is fine')
})

t.test('read and auth frames', async (t) => {
  accepts(t, { type: 'read', room: 'general', seq: 0 })
  accepts(t, { type: 'read', room: 'general', seq: Number.MAX_SAFE_INTEGER, ref: 'r' })
  accepts(t, { type: 'auth', token: 'a.b.c', ref: 'x' })
  t.equal(decode({ type: 'read', room: 'general', seq: -1 }).ok, false, 'a negative seq')
  t.equal(decode({ type: 'read', room: 'general', seq: 1.5 }).ok, false, 'a fractional seq')
  t.equal(decode({ type: 'read', room: 'general' }).ok, false, 'no seq')
  t.equal(decode({ type: 'read', seq: 1 }).ok, false, 'no room')
  t.equal(decode({ type: 'auth' }).ok, false, 'no token')
  t.equal(decode({ type: 'auth', token: '' }).ok, false, 'an empty token')
  t.equal(decode({ type: 'auth', token: 7 }).ok, false, 'a token that is not text')
})
