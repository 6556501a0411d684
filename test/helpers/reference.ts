// docs/API.md (the repository's API reference) read as data, and the server's routes as Fastify
// prints them: what the tests comparing the two, and the generated docs with both, share.
import { readFileSync } from 'node:fs'

/** docs/API.md: everything this version serves. */
export function apiReference (): string {
  return readFileSync(new URL('../../docs/API.md', import.meta.url), 'utf8')
}

/** `METHOD /path` pairs from Fastify's route tree (`printRoutes({ commonPrefix: false })`), without HEAD and the CORS preflight. */
export function routesOf (tree: string): string[] {
  const routes: string[] = []
  const stack: string[] = []
  for (const line of tree.split('\n')) {
    const match = /^([│ ]*)[├└]── (\S+)(?: \(([^)]*)\))?/.exec(line)
    if (match === null) continue
    const depth = (match[1] ?? '').length / 4
    stack.length = depth
    stack.push(match[2] ?? '')
    for (const method of (match[3] ?? '').split(', ')) {
      const path = stack.join('')
      if (method === '' || method === 'HEAD' || path === '*') continue
      routes.push(`${method} ${path}`)
    }
  }
  return routes
}

/** The rows of a markdown table's section, from its heading to the next heading, as cells. */
function tableRows (text: string, heading: string): string[][] {
  const start = text.indexOf(`${heading}\n`)
  if (start < 0) throw new Error(`no "${heading}" in docs/API.md`)
  const rest = text.slice(start + heading.length + 1)
  const end = rest.search(/^#{2,3} /m)
  return (end < 0 ? rest : rest.slice(0, end)).split('\n')
    .filter((line) => line.startsWith('| ') && !line.startsWith('| ---'))
    .slice(1)
    // No cell of these tables holds a `|` of its own.
    .map((line) => line.slice(1, -1).split('|').map((cell) => cell.trim()))
}

/** The frame `type`s of the socket tables, client to server and server to client. */
export function referenceFrameTypes (served: string): { client: Set<string>, server: Set<string> } {
  const typesOf = (heading: string): Set<string> =>
    new Set(tableRows(served, heading).flatMap(([first = '']) => [...first.matchAll(/`([a-z]+)`/g)].map((m) => m[1] ?? '')))
  return { client: typesOf('### Client to server'), server: typesOf('### Server to client') }
}

export interface RestRow {
  /** `METHOD /path` as written (`:id` parameters). */
  readonly route: string
  /** Query parameters (GET, DELETE) or body fields (POST, PUT) the row names. */
  readonly inputs: string[]
  /** Statuses the row names, `201` in "`201 Room`" or "`409` if ...". */
  readonly statuses: number[]
}

/** The REST routes table: each route's inputs and the statuses it promises. */
export function referenceRoutes (served: string): RestRow[] {
  return tableRows(served, '### Routes').flatMap(([route = '', input = '', success = '']) => {
    const match = /^`((?:GET|POST|PUT|PATCH|DELETE) \/[^`\s?]*)`/.exec(route)
    if (match === null) return []
    const body = /`\{([^}]*)\}`/.exec(input)
    const inputs = body !== null
      ? (body[1] ?? '').split(',').map((field) => field.trim().replace(/[?:].*$/, '')).filter((field) => field !== '')
      : [...input.matchAll(/`([a-zA-Z]+)`/g)].map((m) => m[1] ?? '')
    const statuses = [...success.matchAll(/`([1-5]\d\d)[ `]/g)].map((m) => Number(m[1]))
    return [{ route: match[1] ?? '', inputs, statuses }]
  })
}
