import type { Test } from 'tap'
import type { ApiResponse } from './http.js'

/**
 * Asserts an error response as API.md defines it: the exact status, a JSON content type, a body
 * of exactly `{error, message}`, the contract code, and a non-empty message. Six assertions per
 * call, each labelled with `label` so a failure says which request it was.
 */
export function assertError (t: Test, res: ApiResponse, status: number, code: string, label: string): void {
  t.equal(res.status, status, `${label}: status`)
  t.match(res.headers.get('content-type') ?? '', /^application\/json/, `${label}: content-type`)
  t.strictSame(Object.keys(res.body ?? {}).sort(), ['error', 'message'], `${label}: body is exactly {error, message}`)
  t.equal(res.body?.error, code, `${label}: error code`)
  t.type(res.body?.message, 'string', `${label}: message is a string`)
  t.not(res.body?.message, '', `${label}: message is not empty`)
}
