import { pino, type Logger } from 'pino'
import type { LogLevel } from '../../src/config.js'
import { loggerOptions } from '../../src/logger.js'
import type { LogLine } from './spawn.js'

export interface CapturedLogs {
  /** Configured as the server configures its own (level, redaction), for `startTestServer`'s `logger`. */
  readonly logger: Logger
  /** Every line written so far, parsed. */
  readonly lines: LogLine[]
  /** Every line written so far, as written: to check that a secret appears nowhere. */
  text (): string
}

/** A pino logger that writes into memory, synchronously, instead of stdout. */
export function captureLogs (level: LogLevel): CapturedLogs {
  const lines: LogLine[] = []
  const written: string[] = []
  const destination = {
    write (chunk: string) {
      written.push(chunk)
      for (const line of chunk.split('\n')) if (line !== '') lines.push(JSON.parse(line) as LogLine)
    }
  }
  return { logger: pino(loggerOptions(level), destination), lines, text: () => written.join('') }
}
