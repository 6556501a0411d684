import type { ChatError } from './types.js'

export function chatError (code: string, message: string): ChatError {
  return Object.assign(new Error(message), { code })
}

/** Codes a retry cannot fix: the request itself is wrong or not allowed. Anything else (`unavailable`, `rate_limited`, `internal`...) is retried. */
const FINAL = new Set(['bad_request', 'forbidden', 'not_found', 'conflict', 'payload_too_large'])

export function isFinal (code: string): boolean {
  return FINAL.has(code)
}
