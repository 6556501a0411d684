import { readFileSync } from 'node:fs'
import { STATUS_CODES } from 'node:http'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import fastifySwagger from '@fastify/swagger'
import type { FastifySchema } from 'fastify'
import fp from 'fastify-plugin'
import { codeForStatus } from '../../src/errors.js'
import { SUBPROTOCOL } from '../../src/gateway/auth.js'
import { isFresh, repositoryRoot, staticFile, type StaticFile } from '../../src/http/static-file.js'
import { createAsyncApiDocument } from '../../src/protocol/asyncapi.js'
import { ErrorResponse, Message, Room, User } from '../../src/protocol/resources.js'
import { BEARER_AUTH, documentRoute } from '../routes/schemas.js'

/**
 * `/docs`: the REST API as OpenAPI 3.1 (`/docs/json`), generated from the route schemas, with a
 * Swagger UI page over it, and the socket protocol as AsyncAPI 3 (`/docs/asyncapi.json`),
 * generated from the frame schemas. Registered before the routes, whose schemas it collects.
 *
 * The page is Swagger UI as @fastify/swagger-ui vendors it (swagger-ui-dist without its
 * install-time telemetry), served from an explicit list like the demo's files: that plugin itself
 * would add a wildcard route into its folder and routes nobody needs (YAML, a redirect).
 */

/**
 * Shapes that several routes answer with, documented once under these names. The routes keep
 * the objects inline (an `$id` repeated inside one response breaks Fastify's serializer, and a
 * `$ref` would cost the handlers their inferred types), so they are recognised by identity.
 */
const COMPONENTS: ReadonlyMap<object, string> = new Map<object, string>([
  [User, 'User'],
  [Room, 'Room'],
  [Message, 'Message'],
  [ErrorResponse, 'ErrorResponse']
])

const TAGS = [
  { name: 'auth', description: 'Accounts, access tokens (JWT, `JWT_TTL`) and refresh tokens.' },
  { name: 'users', description: 'Finding people.' },
  { name: 'rooms', description: 'Rooms: public, or private to their members.' },
  { name: 'members', description: 'Who belongs to a room.' },
  { name: 'messages', description: 'History, and sending without a socket.' },
  { name: 'read positions', description: 'How far each member has read.' },
  { name: 'presence', description: 'Who is online.' },
  { name: 'operations', description: 'Liveness, readiness and metrics.' },
  { name: 'documents', description: 'These documents, the JavaScript client and the demo page; no token needed.' }
]

/** No inline script or style and nothing from another origin, as on the demo page; the page only fetches this server's documents. */
const PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'"
].join('; ')

const PAGE_HEADERS = {
  'content-security-policy': PAGE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache'
}

const HTML = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Chat backend API</title>
  <link rel="icon" href="/demo/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="stylesheet" href="/docs/index.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/docs.js"></script>
</body>
</html>
`

// BaseLayout: no top bar, whose URL box could only load this server's documents anyway.
const SCRIPT = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({ url: '/docs/json', dom_id: '#swagger-ui', layout: 'BaseLayout', deepLinking: true, docExpansion: 'list', defaultModelsExpandDepth: 1, validatorUrl: null })
})
`

interface PageFile extends StaticFile { readonly contentType: string }

/** The page's files by URL, read once: what Swagger UI ships, and the two pieces written here. */
function docsPage (): ReadonlyMap<string, PageFile> {
  const swaggerUi = join(dirname(createRequire(import.meta.url).resolve('@fastify/swagger-ui')), 'static')
  const file = (body: Buffer | string, contentType: string): PageFile => ({ ...staticFile(Buffer.from(body)), contentType })
  const css = 'text/css; charset=utf-8'
  const js = 'application/javascript; charset=utf-8'
  return new Map([
    ['/docs', file(HTML, 'text/html; charset=utf-8')],
    ['/docs/docs.js', file(SCRIPT, js)],
    ['/docs/swagger-ui.css', file(readFileSync(join(swaggerUi, 'swagger-ui.css')), css)],
    ['/docs/index.css', file(readFileSync(join(swaggerUi, 'index.css')), css)],
    ['/docs/swagger-ui-bundle.js', file(readFileSync(join(swaggerUi, 'swagger-ui-bundle.js')), js)]
  ])
}

const DESCRIPTION = [
  'The REST half of the chat backend, generated from the schemas the server validates with.',
  'The WebSocket protocol (`GET /ws`) is the AsyncAPI 3 document [/docs/asyncapi.json](/docs/asyncapi.json).',
  '',
  'Errors are `{"error": "<code>", "message": "<text>"}`; `429` and `503` carry `Retry-After` (seconds).',
  'Every text field refuses NUL and lone surrogates with `400 bad_request`.',
  'Not listed here: the socket\'s plain-GET answer, and the files the pages load (`/docs/*.js`, `/docs/*.css`, `/demo/*`).'
].join('\n')

/** A copy of `schema` (enumerable keys only: TypeBox's own markers stay behind) in which the named components are references. */
function withReferences (schema: unknown, isComponent = false): unknown {
  if (typeof schema !== 'object' || schema === null) return schema
  const name = COMPONENTS.get(schema)
  if (name !== undefined && !isComponent) return { $ref: `${name}#` }
  if (Array.isArray(schema)) return schema.map((item) => withReferences(item))
  return Object.fromEntries(Object.entries(schema).map(([key, value]) => [key, withReferences(value)]))
}

/** Each response described by its status and, for an error, the contract's code; `Retry-After` with the contract's 429 and 503 errors. */
function describeResponses (responses: unknown): Record<string, unknown> | undefined {
  if (typeof responses !== 'object' || responses === null) return undefined
  return Object.fromEntries(Object.entries(responses).map(([status, schema]) => {
    // Already an OpenAPI response with its media types (the documents and pages): as written.
    if (typeof schema === 'object' && schema !== null && 'content' in schema) return [status, schema]
    const code = Number(status)
    const reason = STATUS_CODES[code] ?? status
    const description = code >= 400 ? `${reason}: \`${codeForStatus(code)}\`` : reason
    const headers = (code === 429 || code === 503) && schema === ErrorResponse
      ? { headers: { 'retry-after': { type: 'integer', description: 'seconds to wait before retrying' } } }
      : {}
    return [status, { ...(withReferences(schema) as object), description, ...headers }]
  }))
}

/** Routes without a schema (the pages' files, the socket's plain-GET answer) are not listed. */
function document (schema: FastifySchema | undefined): FastifySchema {
  if (schema === undefined || schema.hide === true) return { hide: true }
  const { response, ...rest } = schema
  return { ...(withReferences(rest) as FastifySchema), response: describeResponses(response) }
}

function packageVersion (): string {
  const manifest = JSON.parse(readFileSync(join(repositoryRoot(), 'package.json'), 'utf8')) as { version: string }
  return manifest.version
}

export default fp(async (fastify) => {
  const version = packageVersion()
  await fastify.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Chat backend REST API', version, description: DESCRIPTION, license: { name: 'MIT', identifier: 'MIT' } },
      tags: TAGS,
      components: {
        securitySchemes: {
          [BEARER_AUTH]: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'The `token` of `POST /auth/login` or `POST /auth/refresh`.' }
        }
      }
    },
    // 3.1 takes JSON Schema as it is: `const` and `type: "null"` stay as the routes validate them.
    convertConstToEnum: false,
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => typeof json.$id === 'string' ? json.$id : `def-${i}` },
    transform: ({ schema, url }) => ({ schema: document(schema), url })
  })
  for (const [schema, name] of COMPONENTS) fastify.addSchema({ ...(withReferences(schema, true) as object), $id: name })

  const page = docsPage()
  // The page and the documents need no token. The documents go out as strings, which Fastify's
  // serializer leaves alone: their response schemas only describe them.
  let openApi: string | undefined
  fastify.get('/docs/json', { schema: documentRoute('The REST API as OpenAPI 3.1 (this document)', 'application/json', 'object') }, async (request, reply) => {
    openApi ??= JSON.stringify(fastify.swagger())
    return await reply.type('application/json; charset=utf-8').send(openApi)
  })
  // Built once: the frames do not change while the process runs.
  const asyncApi = JSON.stringify(createAsyncApiDocument({ version, subprotocol: SUBPROTOCOL }))
  fastify.get('/docs/asyncapi.json', { schema: documentRoute('The socket protocol (`GET /ws`) as AsyncAPI 3', 'application/json', 'object') }, async (request, reply) => await reply.type('application/json; charset=utf-8').send(asyncApi))
  for (const [url, file] of page) {
    const schema = url === '/docs' ? documentRoute('This reference as a page (Swagger UI)', 'text/html') : { hide: true }
    fastify.get(url, { schema }, async (request, reply) => {
      void reply.headers({ ...PAGE_HEADERS, etag: file.etag, 'content-type': file.contentType })
      if (isFresh(request.headers['if-none-match'], file.etag)) return await reply.code(304).send()
      return await reply.send(file.body)
    })
  }
}, { name: 'docs' })
