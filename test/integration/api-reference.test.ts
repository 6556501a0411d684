import { readFileSync } from 'node:fs'
import t from 'tap'
import { EnvSchema } from '../../src/config.js'
import { HTTP_STATUS } from '../../src/errors.js'
import * as frames from '../../src/protocol/frames.js'
import { backends } from '../helpers/backends.js'
import { apiReference, routesOf } from '../helpers/reference.js'
import { startTestServer } from '../helpers/server.js'

// docs/API.md is the repository's API reference: it must name everything the server has, and
// name nothing the server lacks. Routes do not depend on the database, so one backend is enough.
const served = apiReference()
const envExample = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8')

/** Every frame `type` the protocol module defines a schema for, client and server. */
function frameTypes (): string[] {
  const types = new Set<string>()
  for (const value of Object.values(frames)) {
    const type = (value as { properties?: { type?: { const?: unknown } } } | null)?.properties?.type?.const
    if (typeof type === 'string') types.add(type)
  }
  return [...types]
}

t.test('the reference names every route the server serves, and only those', async (t) => {
  const [backend] = backends().run
  if (backend === undefined) throw new Error('no backend')
  const { server } = await startTestServer(t, backend)
  const routes = routesOf(server.app.printRoutes({ commonPrefix: false }))
  t.ok(routes.length >= 20, `found the routes (${routes.length})`)
  for (const route of routes) t.ok(served.includes(`\`${route}\``), `${route} is documented`)
  const documented = [...served.matchAll(/`(GET|POST|PUT|PATCH|DELETE) (\/[^`\s?]*)`/g)].map((m) => `${m[1] ?? ''} ${m[2] ?? ''}`)
  for (const route of new Set(documented)) t.ok(routes.includes(route), `${route} exists`)
})

t.test('every frame type, error code and variable is named', async (t) => {
  const types = frameTypes()
  t.ok(types.length >= 16, `found the frame types (${types.join(', ')})`)
  for (const type of types) t.ok(served.includes(`| \`${type}\``) || served.includes(`\`${type}\`,`) || served.includes(`, \`${type}\` |`), `frame ${type}`)
  for (const code of Object.keys(HTTP_STATUS)) t.ok(served.includes(`\`${code}\``), `error code ${code}`)
  for (const variable of Object.keys(EnvSchema.properties)) {
    t.ok(served.includes(`\`${variable}\``), `${variable} in docs/API.md`)
    t.match(envExample, new RegExp(`^${variable}=`, 'm'), `${variable} in .env.example`)
  }
})
