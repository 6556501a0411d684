// GET /docs, /docs/json and /docs/asyncapi.json (API.md: "a browsable API reference; the REST API
// as OpenAPI 3; the socket protocol as AsyncAPI 3; both generated from the schemas the server
// validates with"). The OpenAPI document is held against the server's router and against
// docs/API.md's routes table, the AsyncAPI one against the socket tables and the frame schemas.
// Routes do not depend on the database, so one backend is enough.
import SwaggerParser from '@apidevtools/swagger-parser'
import { DiagnosticSeverity, Parser } from '@asyncapi/parser'
import t from 'tap'
import * as frames from '../../src/protocol/frames.js'
import { ErrorResponse, Message, Room, User } from '../../src/protocol/resources.js'
import { backends } from '../helpers/backends.js'
import { referenceFrameTypes, referenceRoutes, routesOf, apiReference } from '../helpers/reference.js'
import { startTestServer } from '../helpers/server.js'

/** Served but not listed: the files the pages load, and the socket's plain-GET answer. */
const UNDOCUMENTED = (route: string): boolean =>
  /^GET \/(demo\/.*|ws|docs\/[\w-]+\.(js|css))$/.test(route)

type Json = Record<string, any>
interface Operation { readonly route: string, readonly spec: Json }

/** `GET /rooms/{id}` in OpenAPI is `GET /rooms/:id` in Fastify and API.md. */
const toFastify = (path: string): string => path.replace(/\{([^}]+)\}/g, ':$1')

function operationsOf (openapi: Json): Operation[] {
  return Object.entries(openapi.paths as Json).flatMap(([path, item]) =>
    Object.entries(item as Json).map(([method, spec]) => ({ route: `${method.toUpperCase()} ${toFastify(path)}`, spec: spec as Json })))
}

function refsIn (value: unknown, found: string[] = []): string[] {
  if (typeof value !== 'object' || value === null) return found
  for (const [key, inner] of Object.entries(value)) {
    if (key === '$ref' && typeof inner === 'string') found.push(inner)
    else refsIn(inner, found)
  }
  return found
}

const plain = (schema: unknown): unknown => JSON.parse(JSON.stringify(schema))
/** @asyncapi/parser's schema type, as the plain JSON it wraps. */
const asJson = (value: unknown): Json | undefined => value as Json | undefined

t.test('the docs', async (t) => {
  const [backend] = backends().run
  if (backend === undefined) throw new Error('no backend')
  const { server, api } = await startTestServer(t, backend)
  const routes = routesOf(server.app.printRoutes({ commonPrefix: false }))
  const served = apiReference()

  const docs = await api.request('GET', '/docs/json')
  t.equal(docs.status, 200, 'GET /docs/json answers')
  const openapi = docs.body as Json
  const operations = operationsOf(openapi)
  const byRoute = new Map(operations.map((operation) => [operation.route, operation.spec]))

  t.test('OpenAPI lists every route of the REST API, and only routes that exist', async (t) => {
    t.match(openapi.openapi, /^3\./, 'OpenAPI 3')
    const expected = routes.filter((route) => !UNDOCUMENTED(route))
    t.ok(expected.length >= 20, `the router has the routes (${expected.length})`)
    for (const route of expected) t.ok(byRoute.has(route), `${route} is in the document`)
    for (const { route } of operations) t.ok(routes.includes(route), `${route} is served`)
    t.equal(operations.length, expected.length, 'nothing else is listed')
    for (const route of routes.filter(UNDOCUMENTED)) t.notOk(byRoute.has(route), `${route} is not part of the REST API`)
  })

  t.test('each operation has its parameters, body, responses, tag and summary', async (t) => {
    for (const { route, spec } of operations) {
      const parameters = (spec.parameters ?? []) as Json[]
      for (const [, name] of route.matchAll(/:(\w+)/g)) {
        t.ok(parameters.some((p) => p.in === 'path' && p.name === name && p.required === true && p.schema !== undefined), `${route}: path parameter ${name ?? ''}`)
      }
      if (/^(POST|PUT) /.test(route)) {
        t.ok(spec.requestBody?.content?.['application/json']?.schema !== undefined, `${route}: a JSON body schema`)
      }
      const statuses = Object.keys(spec.responses ?? {})
      t.ok(statuses.some((status) => /^2\d\d$/.test(status)), `${route}: a success response (${statuses.join(', ')})`)
      for (const [status, response] of Object.entries(spec.responses as Json)) {
        if (status === '204') continue
        t.ok(Object.values((response as Json).content ?? {}).some((media) => (media as Json).schema !== undefined), `${route}: ${status} has a schema`)
      }
      t.ok(Array.isArray(spec.tags) && spec.tags.length > 0 && typeof spec.summary === 'string', `${route}: tagged and summarised`)
    }
  })

  t.test('docs/API.md\'s routes table and the document agree', async (t) => {
    const rows = referenceRoutes(served).filter((row) => !UNDOCUMENTED(row.route))
    t.ok(rows.length >= 20, `read the table (${rows.length} rows)`)
    for (const row of rows) {
      const spec = byRoute.get(row.route)
      if (spec === undefined) {
        t.fail(`${row.route} of docs/API.md is not in the document`)
        continue
      }
      const documented = /^(POST|PUT) /.test(row.route)
        ? Object.keys(spec.requestBody?.content?.['application/json']?.schema?.properties ?? {})
        : ((spec.parameters ?? []) as Json[]).filter((p) => p.in === 'query').map((p) => p.name as string)
      t.same(documented.sort(), [...row.inputs].sort(), `${row.route}: ${/^(POST|PUT) /.test(row.route) ? 'body fields' : 'query parameters'} as docs/API.md names them`)
      for (const status of row.statuses) t.ok(String(status) in spec.responses, `${row.route}: ${status} is documented`)
    }
  })

  t.test('the documents, pages and client are listed with the media type they are sent as', async (t) => {
    const listed = operations.filter(({ spec }) => (spec.tags as string[]).includes('documents'))
    t.same(listed.map(({ route }) => route).sort(), ['GET /', 'GET /client.d.ts', 'GET /client.js', 'GET /docs', 'GET /docs/asyncapi.json', 'GET /docs/json'], 'the six of them')
    for (const { route, spec } of listed) {
      t.equal(spec.security, undefined, `${route}: no token`)
      const answer = await api.request('GET', route.slice('GET '.length))
      t.equal(answer.status, 200, `${route} answers (the client is built by \`npm test\`'s pretest)`)
      t.same(Object.keys(spec.responses['200'].content as Json), [answer.headers.get('content-type')?.split(';')[0]], `${route}: documented as what it sends`)
    }
  })

  t.test('authenticated routes say so, and only they answer 401 without a token', async (t) => {
    t.same(openapi.components?.securitySchemes?.bearerAuth, { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: openapi.components?.securitySchemes?.bearerAuth?.description }, 'a bearer JWT scheme')
    for (const { route, spec } of operations) {
      const [method = '', path = ''] = route.split(' ')
      const url = path.replace(':userId', '1').replace(':id', path.startsWith('/users/') ? '1' : 'general')
      const answer = await api.request(method, url)
      const secured = Array.isArray(spec.security) && spec.security.some((requirement: Json) => 'bearerAuth' in requirement)
      if (secured) {
        t.equal(answer.status, 401, `${route} is marked as authenticated and refuses a request without a token`)
        t.ok('401' in spec.responses, `${route} documents its 401`)
      } else {
        t.not(answer.status, 401, `${route} is not marked as authenticated and needs no token (${answer.status})`)
      }
    }
  })

  t.test('shared shapes are components with stable names, every $ref resolves, and the document is valid', async (t) => {
    const schemas = openapi.components?.schemas as Json
    t.same(Object.keys(schemas).sort(), ['ErrorResponse', 'Message', 'Room', 'User'], 'named by their own names, no generated ones')
    t.same(schemas.Room, plain(Room), 'Room is the schema the routes answer with')
    t.same(schemas.Message, plain(Message), 'Message too')
    t.same(schemas.User, plain(User), 'User too')
    t.same(schemas.ErrorResponse, plain(ErrorResponse), 'and ErrorResponse')
    const refs = refsIn(openapi)
    t.ok(refs.length > 50, `the routes refer to them (${refs.length} $refs)`)
    for (const ref of new Set(refs)) {
      const name = /^#\/components\/schemas\/(\w+)$/.exec(ref)?.[1]
      t.ok(name !== undefined && name in schemas, `${ref} resolves`)
    }
    t.same(byRoute.get('GET /rooms/:id')?.responses['200'].content['application/json'].schema, { $ref: '#/components/schemas/Room' }, 'GET /rooms/:id answers a Room')
    t.notMatch(docs.text, /~kind|~optional|def-\d/, 'no TypeBox markers or generated names leak into the document')
    // SwaggerParser dereferences in place: it gets a copy.
    await t.resolves(SwaggerParser.validate(structuredClone(openapi) as any), 'valid OpenAPI (swagger-parser)')
  })

  t.test('GET /docs is a page over the document, with a strict CSP', async (t) => {
    const page = await api.request('GET', '/docs')
    t.equal(page.status, 200)
    t.match(page.headers.get('content-type'), /^text\/html/)
    t.match(page.text, /<div id="swagger-ui">/)
    const csp = page.headers.get('content-security-policy') ?? ''
    t.match(csp, /default-src 'self'/, 'a CSP')
    t.notMatch(csp, /unsafe-inline|unsafe-eval|https:/, 'no inline code, no eval, no other origin')
    const assets = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? '')
    t.ok(assets.length >= 5, `it loads its scripts and styles (${assets.length})`)
    for (const asset of assets) {
      const loaded = await api.request('GET', new URL(asset, 'http://x/docs').pathname)
      t.equal(loaded.status, 200, `${asset} loads`)
    }
    t.ok(assets.includes('/docs/swagger-ui-bundle.js') && assets.includes('/docs/docs.js'), 'Swagger UI and the script that starts it')
    t.match((await api.request('GET', '/docs/docs.js')).text, /url: '\/docs\/json'/, 'over /docs/json')
    const again = await api.request('GET', '/docs/swagger-ui-bundle.js', { headers: { 'if-none-match': page.headers.get('etag') ?? '' } })
    t.equal(again.status, 200, 'the page\'s ETag is not the bundle\'s')
    const etag = again.headers.get('etag') ?? ''
    t.equal((await api.request('GET', '/docs/swagger-ui-bundle.js', { headers: { 'if-none-match': etag } })).status, 304, 'a browser revalidates the 1.6 MB bundle with its ETag')
  })

  t.test('GET /docs/asyncapi.json is a valid AsyncAPI 3 document of every frame', async (t) => {
    const response = await api.request('GET', '/docs/asyncapi.json')
    t.equal(response.status, 200)
    t.match(response.headers.get('content-type'), /^application\/json/)
    const asyncapi = response.body as Json
    t.match(asyncapi.asyncapi, /^3\./, 'AsyncAPI 3')
    t.notMatch(response.text, /~kind|~optional/, 'no TypeBox markers')

    const { document, diagnostics } = await new Parser().parse(response.text)
    const problems = diagnostics.filter((d) => [DiagnosticSeverity.Error, DiagnosticSeverity.Warning].includes(d.severity)).map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`)
    t.same(problems, [], '@asyncapi/parser finds no error or warning')
    if (document === undefined) return

    const expected = referenceFrameTypes(served)
    t.ok(expected.client.size >= 7 && expected.server.size >= 12, `read docs/API.md's socket tables (${expected.client.size} client, ${expected.server.size} server types)`)
    const typesOf = (action: 'send' | 'receive'): Set<string> => new Set(document.operations().all()
      .filter((operation) => operation.action() === action)
      .flatMap((operation) => operation.messages().all().map((message) => String(asJson(message.payload()?.json())?.properties?.type?.const))))
    // The document describes the server: it receives the client's frames and sends its own.
    t.same([...typesOf('receive')].sort(), [...expected.client].sort(), 'the frames a client sends, as docs/API.md names them')
    t.same([...typesOf('send')].sort(), [...expected.server].sort(), 'the frames the server sends, as docs/API.md names them')
    t.equal(document.channels().all()[0]?.address(), '/ws', 'one channel: /ws')

    const messages = asyncapi.components.messages as Json
    for (const [type, schema] of Object.entries(frames.CLIENT_FRAMES)) {
      const named = Object.values(messages).filter((message: Json) => message.payload?.properties?.type?.const === type && plainEqual(message.payload, schema))
      t.equal(named.length, 1, `client frame ${type}: the payload is the schema the gateway validates with`)
    }
    for (const [name, value] of Object.entries(frames)) {
      const type = (value as Json | null)?.properties?.type?.const
      if (typeof type !== 'string') continue
      t.ok(messages[name] !== undefined && plainEqual(messages[name].payload, value), `${name} (${type}) is a message with its schema as the payload`)
    }
    const binding = asyncapi.channels.socket.bindings.ws
    t.ok(binding.query.properties.token !== undefined && binding.headers.properties['Sec-WebSocket-Protocol'] !== undefined && binding.headers.properties.Authorization !== undefined,
      'the upgrade takes the token from the query, the subprotocol or Authorization')
    for (const code of Object.values(frames.CloseCode)) t.match(asyncapi.channels.socket.description, String(code), `close code ${code} is described`)
  })
})

function plainEqual (a: unknown, b: unknown): boolean {
  return JSON.stringify(plain(a)) === JSON.stringify(plain(b))
}
