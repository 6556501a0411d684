import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyPluginAsync } from 'fastify'
import { AppError } from '../../src/errors.js'
import { isFresh, repositoryRoot, staticFile, type StaticFile } from '../../src/http/static-file.js'
import { documentRoute } from './schemas.js'

/** No inline script or style anywhere: the demo renders user text, and this stops any that slips through from running. */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'"
].join('; ')

interface Asset {
  /** Relative to the repository root. */
  readonly file: string
  readonly contentType: string
  /** What to do when the file is missing: build output can be absent in a fresh checkout. */
  readonly missing: string
  readonly headers?: Readonly<Record<string, string>>
  /** Lists the route in the OpenAPI document; the files a page loads are left out. */
  readonly summary?: string
}

const BUILD_HINT = 'run `npm run build` (or `node client/build.mjs`) and restart the server'

/** Every file these routes serve, by URL: an explicit list, so no request path ever reaches the file system. */
const ASSETS: ReadonlyMap<string, Asset> = new Map([
  ['/client.js', {
    file: 'client/dist/client.js',
    contentType: 'application/javascript; charset=utf-8',
    missing: `the client is not built: ${BUILD_HINT}`,
    summary: 'The JavaScript client as one ES module without imports (`503` until built)',
    // Deno (and tools that follow it) find the declarations of a module served over HTTP here.
    headers: { 'x-typescript-types': '/client.d.ts' }
  }],
  ['/client.d.ts', {
    file: 'client/dist/client.d.ts',
    contentType: 'application/typescript; charset=utf-8',
    missing: `the client's declarations are not built: ${BUILD_HINT}`,
    summary: 'The client\'s TypeScript declarations (`503` until built)'
  }],
  ['/', { file: 'demo/index.html', contentType: 'text/html; charset=utf-8', missing: 'the demo page is missing from this installation', summary: 'A demo chat page built on `/client.js`' }],
  ['/demo/app.js', { file: 'demo/app.js', contentType: 'application/javascript; charset=utf-8', missing: 'the demo script is missing from this installation' }],
  ['/demo/app.css', { file: 'demo/app.css', contentType: 'text/css; charset=utf-8', missing: 'the demo stylesheet is missing from this installation' }],
  ['/demo/favicon.svg', { file: 'demo/favicon.svg', contentType: 'image/svg+xml', missing: 'the demo icon is missing from this installation' }]
])

export interface ClientRoutesOptions {
  /** Where the files are looked for; the repository root by default (tests point it elsewhere). */
  readonly root?: string | undefined
}

/** Serves the JavaScript client and the demo chat page built on it; no auth, as a browser's first visit has none. */
const clientRoutes: FastifyPluginAsync<ClientRoutesOptions> = async (fastify, options) => {
  const root = options.root ?? repositoryRoot()
  // Read once each; a file that is missing is looked for again on the next request, so building
  // while the server runs needs no restart the first time (a rebuild does: `no-cache` makes
  // browsers revalidate against the restarted server's ETag).
  const loaded = new Map<string, StaticFile>()

  const load = (url: string, asset: Asset): StaticFile => {
    const cached = loaded.get(url)
    if (cached !== undefined) return cached
    let body: Buffer
    try {
      body = readFileSync(join(root, asset.file))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new AppError('unavailable', asset.missing)
      throw error
    }
    const entry = staticFile(body)
    loaded.set(url, entry)
    return entry
  }

  // On every answer of these routes, errors included.
  fastify.addHook('onSend', async (request, reply, payload) => {
    void reply.headers({
      'content-security-policy': CONTENT_SECURITY_POLICY,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-cache'
    })
    return payload
  })

  for (const [url, asset] of ASSETS) {
    const schema = asset.summary === undefined ? { hide: true } : documentRoute(asset.summary, asset.contentType.split(';')[0] ?? asset.contentType)
    fastify.get(url, { schema }, async (request, reply) => {
      const { body, etag } = load(url, asset)
      void reply.header('etag', etag)
      if (asset.headers !== undefined) void reply.headers(asset.headers)
      if (isFresh(request.headers['if-none-match'], etag)) return await reply.code(304).send()
      return await reply.type(asset.contentType).send(body)
    })
  }
}

export default clientRoutes
