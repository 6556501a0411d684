import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto'
import { createLimiter, type Limiter } from '../limiter.js'

const KEY_LENGTH = 32
const SALT_LENGTH = 16
const BLOCK_SIZE = 8
const PARALLELISM = 1

export interface PasswordHasherOptions {
  /** log2 of scrypt's N. */
  readonly logN: number
  /** Hashes computed at once; each holds 128 * N * r bytes and a libuv thread. */
  readonly concurrency: number
  /** Hashes allowed to wait; past that `hash`/`verify` reject with `HasherBusyError`. */
  readonly queue: number
}

export interface PasswordHasher {
  /** A PHC string `$scrypt$ln=…,r=…,p=…$salt$hash`, so the cost can change without breaking stored hashes. */
  hash (password: string): Promise<string>
  /**
   * Whether `password` matches `stored`. With `stored` null (unknown user) it still spends one hash,
   * so the answer takes as long as for a wrong password.
   */
  verify (password: string, stored: string | null): Promise<boolean>
  /** Whether `stored` was made with a lower cost than the current one and should be re-hashed. */
  needsRehash (stored: string): boolean
}

export class HasherBusyError extends Error {
  constructor () {
    super('too many password checks in progress')
    this.name = 'HasherBusyError'
  }
}

interface Parsed { logN: number, r: number, p: number, salt: Buffer, key: Buffer }

const PHC = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/

export function createPasswordHasher (options: PasswordHasherOptions): PasswordHasher {
  const limiter: Limiter = createLimiter(options.concurrency, options.queue)
  const dummy = { logN: options.logN, r: BLOCK_SIZE, p: PARALLELISM, salt: randomBytes(SALT_LENGTH), key: randomBytes(KEY_LENGTH) }

  const derive = async (password: string, params: Omit<Parsed, 'key'>, length: number): Promise<Buffer> => {
    const release = limiter.tryAcquire()
    if (release === null) throw new HasherBusyError()
    try {
      await release.ready
      return await scryptAsync(password, params.salt, length, {
        N: 2 ** params.logN,
        r: params.r,
        p: params.p,
        maxmem: 256 * 2 ** params.logN * params.r
      })
    } finally {
      release.done()
    }
  }

  return {
    async hash (password) {
      const salt = randomBytes(SALT_LENGTH)
      const key = await derive(password, { logN: options.logN, r: BLOCK_SIZE, p: PARALLELISM, salt }, KEY_LENGTH)
      return `$scrypt$ln=${options.logN},r=${BLOCK_SIZE},p=${PARALLELISM}$${b64(salt)}$${b64(key)}`
    },
    async verify (password, stored) {
      const parsed = stored === null ? null : parse(stored)
      const target = parsed ?? dummy
      const key = await derive(password, target, target.key.length)
      return parsed !== null && timingSafeEqual(key, parsed.key)
    },
    needsRehash (stored) {
      const parsed = parse(stored)
      return parsed === null || parsed.logN < options.logN || parsed.r < BLOCK_SIZE
    }
  }
}

/** Bounds a stored hash must respect; anything else is treated as no hash at all (never a match). */
const MIN_LOG_N = 10
const MAX_LOG_N = 24
const MIN_SALT_BYTES = 8
const MIN_KEY_BYTES = 16

function parse (stored: string): Parsed | null {
  const m = PHC.exec(stored)
  if (m === null) return null
  const [, logN, r, p, salt, key] = m as unknown as [string, string, string, string, string, string]
  const parsed = { logN: Number(logN), r: Number(r), p: Number(p), salt: Buffer.from(salt, 'base64'), key: Buffer.from(key, 'base64') }
  const sane = parsed.logN >= MIN_LOG_N && parsed.logN <= MAX_LOG_N && parsed.r >= 1 && parsed.p >= 1 &&
    parsed.salt.length >= MIN_SALT_BYTES && parsed.key.length >= MIN_KEY_BYTES
  return sane ? parsed : null
}

function b64 (buffer: Buffer): string {
  return buffer.toString('base64').replace(/=+$/, '')
}

function scryptAsync (password: string, salt: Buffer, length: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFKC'), salt, length, options, (error, key) => error === null ? resolve(key) : reject(error))
  })
}
