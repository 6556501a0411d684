/** The error codes of API.md with their HTTP status; the socket uses the same codes. */
export const HTTP_STATUS = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  rate_limited: 429,
  internal: 500,
  unavailable: 503
} as const

export type ErrorCode = keyof typeof HTTP_STATUS

/** The body of every error response: `{"error": code, "message": text}`. */
export interface ErrorBody { readonly error: ErrorCode, readonly message: string }

/** An expected failure with a contract code; anything else is reported as `internal`. */
export class AppError extends Error {
  readonly code: ErrorCode
  /** Seconds, sent as `Retry-After` with `rate_limited` and `unavailable`. */
  readonly retryAfter: number | undefined

  constructor (code: ErrorCode, message: string, retryAfter?: number) {
    super(message)
    this.name = 'AppError'
    this.code = code
    this.retryAfter = retryAfter
  }

  get statusCode (): number {
    return HTTP_STATUS[this.code]
  }
}

export function codeForStatus (status: number): ErrorCode {
  for (const [code, value] of Object.entries(HTTP_STATUS)) {
    if (value === status) return code as ErrorCode
  }
  return status >= 500 ? 'internal' : 'bad_request'
}
