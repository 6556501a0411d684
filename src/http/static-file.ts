import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** A file served from memory: its bytes and a strong ETag over them, so browsers revalidate with a 304. */
export interface StaticFile {
  readonly body: Buffer
  readonly etag: string
}

export function staticFile (body: Buffer): StaticFile {
  return { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` }
}

/** Whether a request's `If-None-Match` names `etag`: a 304 answers it. */
export function isFresh (ifNoneMatch: string | undefined, etag: string): boolean {
  return ifNoneMatch?.split(/\s*,\s*/).includes(etag) === true
}

/** The directory holding package.json: the same from the sources under tsx and from `dist/` compiled. */
export function repositoryRoot (from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) throw new Error(`no package.json above ${from}`)
    dir = parent
  }
  return dir
}
