import type { LogFn, LoggerOptions } from 'pino'
import type { LogLevel } from './config.js'

/** Paths never written to the log: credentials in headers, bodies and tokens wherever they appear. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["sec-websocket-protocol"]',
  'headers.authorization',
  '*.password',
  '*.token',
  'password',
  'token'
]

/** Removes `token=` from query strings before a URL is logged (the socket accepts `?token=`). */
export function redactUrl (url: string): string {
  return url.replace(/([?&]token=)[^&]*/gi, '$1[Redacted]')
}

export function loggerOptions (level: LogLevel): LoggerOptions {
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: '[Redacted]' },
    serializers: {
      req: (req: { method: string, url: string, ip?: string }) => ({ method: req.method, url: redactUrl(req.url), ip: req.ip })
    }
  }
}

/** The logging the core needs; Fastify's logger and pino's both fit, so the core knows neither. */
export interface Log {
  error: LogFn
  warn: LogFn
  info: LogFn
  debug: LogFn
  /** pino's: lets a caller skip preparing a line nobody will see (absent from Fastify's disabled logger). */
  isLevelEnabled?: (level: LogLevel) => boolean
}

/** Whether `log` writes `debug` lines; true when it cannot say (its `debug` is then a cheap no-op or a test's recorder). */
export function debugging (log: Log): boolean {
  return log.isLevelEnabled?.('debug') ?? true
}
