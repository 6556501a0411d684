import type { BusEnvelope } from './bus.js'

/** An envelope as it came off the bus, with the node that sent it. */
export interface DecodedEnvelope {
  readonly nodeId: string
  readonly envelope: BusEnvelope
}

/** Throws unless `nodeId` can travel in an envelope: not empty, and no `\n` (the field separator). */
export function assertNodeId (nodeId: string): void {
  if (nodeId === '' || nodeId.includes('\n')) throw new Error(`bus: invalid node id ${JSON.stringify(nodeId)} (empty or contains a newline)`)
}

/**
 * The one string sent for a publish, made once whatever the number of receivers:
 * `m<nodeId>\n<seq>\n<text>`, `e<nodeId>\n<userId>\n<text>` or `r<nodeId>\n<userId>`.
 * `text` comes last so that it needs no escaping and travels byte for byte, newlines and all.
 * Null when a field cannot be carried (a userId with a newline, a seq that is not a
 * non-negative safe integer); the bus counts that as dropped.
 */
export function encodeEnvelope (nodeId: string, envelope: BusEnvelope): string | null {
  switch (envelope.kind) {
    case 'message':
      return Number.isSafeInteger(envelope.seq) && envelope.seq >= 0 ? `m${nodeId}\n${envelope.seq}\n${envelope.text}` : null
    case 'event':
      return envelope.userId.includes('\n') ? null : `e${nodeId}\n${envelope.userId}\n${envelope.text}`
    case 'revoke':
      return envelope.userId.includes('\n') ? null : `r${nodeId}\n${envelope.userId}`
  }
}

/** The inverse of `encodeEnvelope` with indexOf/slice only (the text is never parsed); null for anything else. */
export function decodeEnvelope (frame: string): DecodedEnvelope | null {
  const kind = frame[0]
  if (kind !== 'm' && kind !== 'e' && kind !== 'r') return null
  const nodeEnd = frame.indexOf('\n', 1)
  if (nodeEnd <= 1) return null
  const nodeId = frame.slice(1, nodeEnd)
  if (kind === 'r') {
    const userId = frame.slice(nodeEnd + 1)
    return userId.includes('\n') ? null : { nodeId, envelope: { kind: 'revoke', userId } }
  }
  const fieldEnd = frame.indexOf('\n', nodeEnd + 1)
  if (fieldEnd < 0) return null
  const field = frame.slice(nodeEnd + 1, fieldEnd)
  const text = frame.slice(fieldEnd + 1)
  if (kind === 'e') return { nodeId, envelope: { kind: 'event', userId: field, text } }
  const seq = Number(field)
  // The canonical spelling only, so that '', ' 1' or '1e3' are garbage rather than a seq.
  if (!Number.isSafeInteger(seq) || seq < 0 || String(seq) !== field) return null
  return { nodeId, envelope: { kind: 'message', seq, text } }
}

/**
 * Another node's envelope from a frame the bus received, counted as received; null (nothing to
 * hand on) for this node's own echo, or for a frame that does not decode, counted as dropped.
 */
export function foreignEnvelope (frame: string, ownNodeId: string, counts: { received: number, dropped: number }): BusEnvelope | null {
  const decoded = decodeEnvelope(frame)
  if (decoded === null) {
    counts.dropped++
    return null
  }
  if (decoded.nodeId === ownNodeId) return null
  counts.received++
  return decoded.envelope
}
