import { Compile } from 'typebox/compile'
import { CLIENT_FRAMES, type ClientFrame, type ServerFrame } from './frames.js'
import { textFault } from './text.js'

type FrameType = keyof typeof CLIENT_FRAMES

const checkers = Object.fromEntries(
  Object.entries(CLIENT_FRAMES).map(([type, schema]) => [type, Compile(schema)])
) as { [K in FrameType]: ReturnType<typeof Compile<(typeof CLIENT_FRAMES)[K]>> }

export type Decoded =
  | { readonly ok: true, readonly frame: ClientFrame }
  /** `ref` is echoed when the frame carried a usable one, so the client can match the error. */
  | { readonly ok: false, readonly message: string, readonly ref?: string | undefined }

const MAX_REF_LENGTH = 64

/**
 * Decodes and validates one client frame. Synchronous on purpose: uWS's message buffer is only
 * valid until the handler returns.
 */
export function decodeFrame (data: ArrayBuffer, isBinary: boolean): Decoded {
  if (isBinary) return { ok: false, message: 'binary frames are not supported: send JSON text' }
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(data).toString('utf8'))
  } catch {
    return { ok: false, message: 'a frame must be JSON' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, message: 'a frame must be a JSON object with a "type"' }
  }
  const { type, ref: rawRef } = value as { type?: unknown, ref?: unknown }
  const ref = typeof rawRef === 'string' && codePoints(rawRef) <= MAX_REF_LENGTH ? rawRef : undefined
  if (typeof type !== 'string' || !Object.hasOwn(checkers, type)) {
    return { ok: false, message: `unknown frame type ${JSON.stringify(type ?? null)}`, ref }
  }
  const checker = checkers[type as FrameType]
  if (!checker.Check(value)) {
    return { ok: false, message: describeProblem(checker, value), ref }
  }
  const frame: ClientFrame = value
  // Frames are flat: every text field is a direct property. A for-in over the few keys allocates nothing.
  for (const key in frame) {
    const field = (frame as Record<string, unknown>)[key]
    if (typeof field !== 'string') continue
    const fault = textFault(field)
    if (fault !== null) return { ok: false, message: `${key}: ${fault}`, ref }
  }
  return { ok: true, frame }
}

function describeProblem (checker: (typeof checkers)[FrameType], value: unknown): string {
  for (const error of checker.Errors(value)) {
    const field = error.instancePath.slice(1)
    if (error.keyword === 'required') return `${error.message}`
    return `${field === '' ? 'frame' : field}: ${error.message}`
  }
  return 'invalid frame'
}

/** Length as the schemas count it (JSON Schema's characters are code points, not UTF-16 units). */
function codePoints (text: string): number {
  return text.length <= MAX_REF_LENGTH ? text.length : [...text].length
}

/** Server frames are encoded once and sent as text. */
export function encodeFrame (frame: ServerFrame): string {
  return JSON.stringify(frame)
}
