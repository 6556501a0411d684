// Black-box tests of the operations half of the public contract (/work/shared/API.md): `GET /metrics`
// (Prometheus text format, the five named `chat_*` series, Node's default process metrics, values
// that move with traffic by frame and by REST), `METRICS_TOKEN`, `GET /docs` (a browsable page),
// `GET /docs/json` (OpenAPI 3 naming every route of API.md's table with what API.md says of it),
// `GET /docs/asyncapi.json` (AsyncAPI 3 naming every frame type of API.md's socket tables, valid per
// `@asyncapi/parser`), `GET /health` and `GET /ready` while up.
//
// Written from API.md alone, through HTTP and WebSocket: nothing is read from the server's source.
// The exposition is parsed here (not with a helper shared with the implementation's own tests), so
// a format slip the server and its tests agree on still shows. Where the issue adds a requirement
// API.md leaves implicit (bounded labels, the token kept out of the logs), the check says so.
//
// Not covered: `chat_slow_consumer_closes_total` moving (provoking a slow consumer needs megabytes
// of backpressure: integration tests do it); `/ready` answering 503 (needs a broken database).
import { randomBytes } from 'node:crypto'
import SwaggerParser from '@apidevtools/swagger-parser'
import { DiagnosticSeverity, Parser } from '@asyncapi/parser'
import t from 'tap'
import { assertError } from '../helpers/assertions.js'
import { connectUntilTeardown, createRoom, delay, registerAndLogIn, spawnedServerEnv, tempDataDir, uniqueRoomId } from '../helpers/chat.js'
import { createClient, type ApiClient, type ApiResponse } from '../helpers/http.js'
import { eachBackend, startTestServer, TEST_SECRET } from '../helpers/server.js'
import type { ConnectedSocket, Frame } from '../helpers/socket.js'
import { spawnServer } from '../helpers/spawn.js'

// ---------------------------------------------------------------------------------------------
// The Prometheus text exposition format (0.0.4), and OpenMetrics 1.0 where it differs.

/** `text/plain; version=0.0.4` (Prometheus) or `application/openmetrics-text; version=…`. */
const EXPOSITION_TYPE = /^(?:text\/plain;\s*version=0\.0\.4|application\/openmetrics-text;\s*version=(?:0\.0\.1|1\.0\.0))(?:;|$)/
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped', 'unknown', 'info', 'stateset', 'gaugehistogram'])
/** The suffixes a sample may add to its family's name (histograms, summaries, OpenMetrics counters). */
const SUFFIXES = ['_bucket', '_sum', '_count', '_total', '_created', '_gcount', '_gsum', '_info']

interface Sample { readonly name: string, readonly labels: Readonly<Record<string, string>>, readonly value: number }
interface Family { readonly name: string, type: string | null, help: string | null, readonly samples: Sample[] }
interface Exposition {
  readonly families: Map<string, Family>
  readonly samples: Sample[]
  /** Every way the text breaks the format; empty for a well-formed exposition. */
  readonly problems: string[]
}

function parseValue (text: string): number | null {
  if (text === '+Inf' || text === 'Inf') return Infinity
  if (text === '-Inf') return -Infinity
  if (text === 'NaN') return NaN
  return NUMBER.test(text) ? Number(text) : null
}

/** The labels between `{` and `}` (exclusive), unescaped; null if malformed. */
function parseLabels (body: string): Record<string, string> | null {
  const labels: Record<string, string> = {}
  let i = 0
  const skipSpaces = (): void => { while (body[i] === ' ') i++ }
  for (;;) {
    skipSpaces()
    if (i >= body.length) return labels
    const name = LABEL_NAME.exec(body.slice(i))?.[0]
    if (name === undefined) return null
    i += name.length
    skipSpaces()
    if (body[i] !== '=') return null
    i++
    skipSpaces()
    if (body[i] !== '"') return null
    i++
    let value = ''
    for (;;) {
      const c = body[i]
      if (c === undefined) return null
      if (c === '\\') {
        const escaped = body[i + 1]
        if (escaped !== '\\' && escaped !== '"' && escaped !== 'n') return null
        value += escaped === 'n' ? '\n' : escaped
        i += 2
      } else if (c === '"') {
        i++
        break
      } else {
        value += c
        i++
      }
    }
    if (Object.hasOwn(labels, name)) return null
    labels[name] = value
    skipSpaces()
    if (body[i] === ',') i++
    else if (i < body.length) return null
  }
}

/** Where the label set opened at `from` closes, skipping quoted values; -1 if it never does. */
function closingBrace (line: string, from: number): number {
  let quoted = false
  for (let i = from + 1; i < line.length; i++) {
    const c = line[i]
    if (quoted && c === '\\') i++
    else if (c === '"') quoted = !quoted
    else if (!quoted && c === '}') return i
  }
  return -1
}

function familyOf (families: Map<string, Family>, name: string): Family | undefined {
  const direct = families.get(name)
  if (direct !== undefined) return direct
  for (const suffix of SUFFIXES) {
    if (name.endsWith(suffix)) {
      const family = families.get(name.slice(0, -suffix.length))
      if (family !== undefined) return family
    }
  }
  return undefined
}

function parseExposition (text: string, openMetrics: boolean): Exposition {
  const families = new Map<string, Family>()
  const samples: Sample[] = []
  const problems: string[] = []
  const series = new Set<string>()
  let current: Family | undefined
  const lines = text.split('\n')
  if (lines[lines.length - 1] === '') lines.pop()
  else problems.push('the exposition does not end with a line feed')
  const declare = (name: string): Family => {
    let family = families.get(name)
    if (family === undefined) {
      family = { name, type: null, help: null, samples: [] }
      families.set(name, family)
    }
    return family
  }
  lines.forEach((line, index) => {
    const where = `line ${index + 1} (${line.slice(0, 80)})`
    if (line.startsWith('#')) {
      const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*)(?: (.*))?$/.exec(line)
      if (meta === null) {
        if (openMetrics && line !== '# EOF') problems.push(`${where}: OpenMetrics allows no other comment`)
        return
      }
      const [, keyword, name = '', rest = ''] = meta
      const family = declare(name)
      if (keyword === 'HELP') {
        if (family.help !== null) problems.push(`${where}: a second HELP for ${name}`)
        family.help = rest
      } else {
        if (family.type !== null) problems.push(`${where}: a second TYPE for ${name}`)
        if (family.samples.length > 0) problems.push(`${where}: TYPE after samples of ${name}`)
        if (!TYPES.has(rest)) problems.push(`${where}: unknown type ${rest}`)
        family.type = rest
      }
      return
    }
    if (line.trim() === '') {
      if (openMetrics) problems.push(`${where}: OpenMetrics allows no blank line`)
      return
    }
    const name = METRIC_NAME.exec(line)?.[0]
    if (name === undefined) {
      problems.push(`${where}: not a sample`)
      return
    }
    let rest = line.slice(name.length)
    let labels: Record<string, string> = {}
    if (rest.startsWith('{')) {
      const end = closingBrace(rest, 0)
      const parsed = end < 0 ? null : parseLabels(rest.slice(1, end))
      if (parsed === null) {
        problems.push(`${where}: malformed labels`)
        return
      }
      labels = parsed
      rest = rest.slice(end + 1)
    }
    const fields = rest.trim().split(/\s+/)
    const value = fields[0] === undefined || !rest.startsWith(' ') ? null : parseValue(fields[0])
    if (value === null || fields.length > 2 || (fields[1] !== undefined && parseValue(fields[1]) === null)) {
      problems.push(`${where}: malformed value or timestamp`)
      return
    }
    const family = familyOf(families, name) ?? declare(name)
    if (family !== current && family.samples.length > 0) problems.push(`${where}: samples of ${family.name} are not in one group`)
    current = family
    const key = `${name}${JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)))}`
    if (series.has(key)) problems.push(`${where}: the series ${key} appears twice`)
    series.add(key)
    const sample = { name, labels, value }
    family.samples.push(sample)
    samples.push(sample)
  })
  if (openMetrics && text.trimEnd().split('\n').pop() !== '# EOF') problems.push('OpenMetrics: no closing # EOF')
  return { families, samples, problems }
}

/** The sum of every sample named `name` (over all its label sets). */
function total (expo: Exposition, name: string): number {
  return expo.samples.filter((s) => s.name === name).reduce((sum, s) => sum + s.value, 0)
}

function hasSample (expo: Exposition, name: string): boolean {
  return expo.samples.some((s) => s.name === name)
}

/** A counter's family: named as its sample (0.0.4) or without `_total` (OpenMetrics). */
function counterFamily (expo: Exposition, sample: string): Family | undefined {
  return expo.families.get(sample) ?? expo.families.get(sample.replace(/_total$/, ''))
}

function labelKey (labels: Readonly<Record<string, string>>, without: string): string {
  return JSON.stringify(Object.entries(labels).filter(([k]) => k !== without).sort(([a], [b]) => a.localeCompare(b)))
}

/**
 * What is wrong with histogram `name`: per label set, `le` buckets that include `+Inf`, cumulative
 * (never decreasing as `le` grows), `+Inf` equal to `_count`, and a `_sum`.
 */
function histogramProblems (expo: Exposition, name: string): string[] {
  const problems: string[] = []
  const groups = new Map<string, Array<{ le: number, value: number }>>()
  for (const s of expo.samples.filter((s) => s.name === `${name}_bucket`)) {
    const le = s.labels.le === undefined ? null : parseValue(s.labels.le)
    if (le === null) {
      problems.push(`a bucket without a numeric le: ${JSON.stringify(s.labels)}`)
      continue
    }
    const key = labelKey(s.labels, 'le')
    groups.set(key, [...groups.get(key) ?? [], { le, value: s.value }])
  }
  if (groups.size === 0) problems.push(`no ${name}_bucket sample`)
  const counts = new Map(expo.samples.filter((s) => s.name === `${name}_count`).map((s) => [labelKey(s.labels, ''), s.value]))
  const sums = new Set(expo.samples.filter((s) => s.name === `${name}_sum`).map((s) => labelKey(s.labels, '')))
  for (const [key, buckets] of groups) {
    buckets.sort((a, b) => a.le - b.le)
    const inf = buckets.find((b) => b.le === Infinity)
    if (inf === undefined) problems.push(`${key}: no le="+Inf" bucket`)
    buckets.forEach((b, i) => {
      const previous = buckets[i - 1]
      if (previous !== undefined && b.value < previous.value) problems.push(`${key}: le=${b.le} holds ${b.value} < ${previous.value} at le=${previous.le} (not cumulative)`)
    })
    const count = counts.get(key)
    if (count === undefined) problems.push(`${key}: no ${name}_count`)
    else if (inf !== undefined && inf.value !== count) problems.push(`${key}: +Inf bucket ${inf.value} != _count ${count}`)
    if (!sums.has(key)) problems.push(`${key}: no ${name}_sum`)
  }
  return problems
}

interface Scrape { readonly res: ApiResponse, readonly expo: Exposition }

async function scrape (api: ApiClient, headers?: Record<string, string>): Promise<Scrape> {
  const res = await api.request('GET', '/metrics', headers === undefined ? {} : { headers })
  const contentType = res.headers.get('content-type') ?? ''
  return { res, expo: parseExposition(res.text, contentType.startsWith('application/openmetrics-text')) }
}

/**
 * Scrapes until `done` holds or `ms` pass, and returns the last exposition: a value observed just
 * after the reply went out still shows, and the caller then asserts the exact numbers.
 */
async function scrapeUntil (api: ApiClient, done: (expo: Exposition) => boolean, ms = 3000): Promise<Exposition> {
  const deadline = Date.now() + ms
  for (;;) {
    const { expo } = await scrape(api)
    if (done(expo) || Date.now() > deadline) return expo
    await delay(25)
  }
}

/** The named series of API.md and the type each has. */
const CHAT_SERIES = [
  { sample: 'chat_sockets', type: 'gauge' },
  { sample: 'chat_messages_stored_total', type: 'counter' },
  { sample: 'chat_message_ack_seconds', type: 'histogram' },
  { sample: 'chat_write_batch_size', type: 'histogram' },
  { sample: 'chat_slow_consumer_closes_total', type: 'counter' }
] as const

const ACK = 'chat_message_ack_seconds'
const BATCH = 'chat_write_batch_size'
const STORED = 'chat_messages_stored_total'

/** The numbers a message moves, read from one exposition. */
function messageNumbers (expo: Exposition): { stored: number, acks: number, ackSum: number, batchSum: number, batches: number } {
  return {
    stored: total(expo, STORED),
    acks: total(expo, `${ACK}_count`),
    ackSum: total(expo, `${ACK}_sum`),
    batchSum: total(expo, `${BATCH}_sum`),
    batches: total(expo, `${BATCH}_count`)
  }
}

// ---------------------------------------------------------------------------------------------
// JSON documents ($ref, schemas)

/** Every `$ref` in `doc`, with the JSON path where it sits. */
function refsOf (doc: unknown): Array<{ at: string, ref: unknown }> {
  const found: Array<{ at: string, ref: unknown }> = []
  const walk = (node: unknown, at: string): void => {
    if (Array.isArray(node)) node.forEach((item, i) => walk(item, `${at}/${i}`))
    else if (typeof node === 'object' && node !== null) {
      for (const [key, value] of Object.entries(node)) {
        if (key === '$ref') found.push({ at, ref: value })
        else walk(value, `${at}/${key}`)
      }
    }
  }
  walk(doc, '#')
  return found
}

/** What a local `$ref` (`#/a/b`) points at inside `doc`; undefined if it points nowhere or is not local. */
function pointer (doc: unknown, ref: unknown): unknown {
  if (typeof ref !== 'string' || !ref.startsWith('#')) return undefined
  let node: unknown = doc
  const path = decodeURIComponent(ref.slice(1))
  if (path === '') return node
  if (!path.startsWith('/')) return undefined
  for (const raw of path.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, key)) return undefined
    node = (node as Record<string, unknown>)[key]
  }
  return node
}

/** `node` with `$ref`s followed (a chain of them too). */
function deref (doc: unknown, node: any): any {
  for (let hops = 0; typeof node === 'object' && node !== null && typeof node.$ref === 'string' && hops < 20; hops++) node = pointer(doc, node.$ref)
  return node
}

/** An object schema's properties (resolved), `allOf` parts merged, with its `required` names. */
function objectShape (doc: unknown, schema: any): { props: Record<string, any>, required: Set<string> } {
  const props: Record<string, any> = {}
  const required = new Set<string>()
  const visit = (node: any): void => {
    node = deref(doc, node)
    if (typeof node !== 'object' || node === null) return
    for (const [k, v] of Object.entries(node.properties ?? {})) props[k] = deref(doc, v)
    for (const r of node.required ?? []) required.add(r)
    for (const part of node.allOf ?? []) visit(part)
  }
  visit(schema)
  return { props, required }
}

/** Whether a schema pins a string to one value (`const`, or an `enum` of one). */
function constant (schema: any): unknown {
  if (schema === undefined || schema === null) return undefined
  if (Object.hasOwn(schema, 'const')) return schema.const
  if (Array.isArray(schema.enum) && schema.enum.length === 1) return schema.enum[0]
  return undefined
}

function unresolvedRefs (doc: unknown): string[] {
  return refsOf(doc).filter(({ ref }) => pointer(doc, ref) === undefined).map(({ at, ref }) => `${at}: ${String(ref)}`)
}

// ---------------------------------------------------------------------------------------------
// API.md's REST table, as OpenAPI should render it.

/** What API.md says of a field's values; checked by what the stated schema admits, however it says it. */
interface Limits {
  /** A string's length in characters, both ends included. */
  readonly length?: readonly [number, number]
  /** Strings of the allowed characters, and strings with others. */
  readonly chars?: { readonly good: readonly string[], readonly bad: readonly string[] }
  /** A number's range, both ends included. */
  readonly range?: readonly [number, number]
  readonly default?: number
}

interface RouteSpec {
  readonly method: 'get' | 'post' | 'put' | 'delete'
  readonly path: string
  /** Body fields: the value says whether API.md makes the field optional (`?`), and its limits. */
  readonly body?: Readonly<Record<string, { optional?: boolean, limits?: Limits }>>
  readonly query?: Readonly<Record<string, Limits>>
  /** Status codes API.md names for the route; the value lists the response fields API.md names (null: none named). */
  readonly responses: Readonly<Record<number, readonly string[] | null>>
  /** API.md: the route takes `Authorization: Bearer <token>` (true), or takes none (false); undefined: not checked. */
  readonly bearer?: boolean
}

const ERROR = ['error', 'message'] as const
const ROOM = ['id', 'title', 'private', 'createdBy', 'createdAt', 'lastSeq', 'readSeq', 'unread'] as const
const MESSAGE = ['id', 'room', 'seq', 'userId', 'username', 'body', 'clientMsgId', 'createdAt'] as const
const LOGIN = ['token', 'tokenType', 'expiresIn', 'refreshToken', 'refreshExpiresIn', 'user'] as const

const ROUTES: readonly RouteSpec[] = [
  {
    method: 'post',
    path: '/auth/register',
    body: {
      username: { limits: { length: [3, 32], chars: { good: ['Al_ice.9-'], bad: ['al ice', 'al/ice'] } } },
      password: { limits: { length: [8, 256] } }
    },
    responses: { 201: ['id', 'username'], 409: ERROR },
    bearer: false
  },
  { method: 'post', path: '/auth/login', body: { username: {}, password: {} }, responses: { 200: LOGIN, 401: ERROR, 429: ERROR }, bearer: false },
  { method: 'post', path: '/auth/refresh', body: { refreshToken: {} }, responses: { 200: LOGIN, 401: ERROR }, bearer: false },
  { method: 'post', path: '/auth/logout', body: { refreshToken: {} }, responses: { 204: null } },
  { method: 'get', path: '/auth/me', responses: { 200: ['user', 'expiresAt'], 401: ERROR }, bearer: true },
  { method: 'get', path: '/users', query: { username: {} }, responses: { 200: ['users'] } },
  { method: 'get', path: '/rooms', responses: { 200: ['rooms'] }, bearer: true },
  {
    method: 'post',
    path: '/rooms',
    body: {
      id: { limits: { length: [1, 64], chars: { good: ['a:b.c_d-1'], bad: ['a b', 'a/b'] } } },
      title: { optional: true },
      private: { optional: true }
    },
    responses: { 201: ROOM, 409: ERROR },
    bearer: true
  },
  { method: 'get', path: '/rooms/{id}', responses: { 200: ROOM, 404: ERROR } },
  {
    method: 'get',
    path: '/rooms/{id}/members',
    query: { limit: { range: [1, 500], default: 100 }, after: {} },
    responses: { 200: ['room', 'members', 'hasMore'], 403: ERROR }
  },
  { method: 'post', path: '/rooms/{id}/members', body: { userId: {} }, responses: { 204: null, 403: ERROR } },
  { method: 'delete', path: '/rooms/{id}/members/{userId}', responses: { 204: null } },
  {
    method: 'get',
    path: '/rooms/{id}/messages',
    query: { before: {}, after: {}, limit: { range: [1, 100], default: 50 } },
    responses: { 200: ['messages', 'hasMore'], 403: ERROR }
  },
  {
    method: 'post',
    path: '/rooms/{id}/messages',
    body: { body: { limits: { length: [1, 4000] } }, clientMsgId: { optional: true, limits: { length: [1, 64] } } },
    responses: { 201: MESSAGE, 200: MESSAGE, 403: ERROR, 404: ERROR, 503: ERROR },
    bearer: true
  },
  { method: 'put', path: '/rooms/{id}/read', body: { seq: {} }, responses: { 200: ['room', 'readSeq'], 403: ERROR, 404: ERROR } },
  {
    method: 'get',
    path: '/rooms/{id}/receipts',
    query: { limit: { range: [1, 100], default: 100 } },
    responses: { 200: ['room', 'receipts'], 403: ERROR, 404: ERROR }
  },
  { method: 'get', path: '/rooms/{id}/presence', responses: { 200: ['room', 'online'] } },
  { method: 'get', path: '/users/{id}/presence', responses: { 200: ['userId', 'status', 'lastSeenAt'] } },
  { method: 'get', path: '/health', responses: { 200: ['status'] }, bearer: false },
  { method: 'get', path: '/ready', responses: { 200: null, 503: null } },
  { method: 'get', path: '/metrics', responses: { 200: null, 401: ERROR } },
  { method: 'get', path: '/docs', responses: { 200: null } },
  { method: 'get', path: '/docs/json', responses: { 200: null } },
  { method: 'get', path: '/docs/asyncapi.json', responses: { 200: null } },
  { method: 'get', path: '/client.js', responses: { 200: null } },
  { method: 'get', path: '/', responses: { 200: null } }
]

/** A response object for `status`: exact, or the `4XX`/`5XX` range it falls in. */
function responseFor (op: any, status: number): any {
  return op.responses?.[String(status)] ?? op.responses?.[`${String(status)[0]}XX`]
}

function jsonSchemaOf (doc: unknown, node: any): any {
  const resolved = deref(doc, node)
  const content = resolved?.content ?? {}
  const key = Object.keys(content).find((k) => /^application\/(?:[\w.+-]*\+)?json/.test(k))
  return key === undefined ? undefined : content[key].schema
}

/** Whether a schema admits `value`, by the keywords that bound strings and numbers. */
function admits (schema: any, value: string | number): boolean {
  if (schema === undefined || schema === null) return true
  if (typeof value === 'string') {
    const length = [...value].length
    if (typeof schema.minLength === 'number' && length < schema.minLength) return false
    if (typeof schema.maxLength === 'number' && length > schema.maxLength) return false
    return typeof schema.pattern !== 'string' || new RegExp(schema.pattern, 'u').test(value)
  }
  if (schema.type === 'integer' && !Number.isInteger(value)) return false
  if (typeof schema.minimum === 'number' && value < schema.minimum) return false
  if (typeof schema.maximum === 'number' && value > schema.maximum) return false
  if (typeof schema.exclusiveMinimum === 'number' && value <= schema.exclusiveMinimum) return false
  return typeof schema.exclusiveMaximum !== 'number' || value < schema.exclusiveMaximum
}

/** Where the schema disagrees with what API.md says of the field's values. */
function limitMismatches (schema: any, limits: Limits | undefined): string[] {
  const problems: string[] = []
  const expect = (value: string | number, admitted: boolean, what: string): void => {
    if (admits(schema, value) !== admitted) problems.push(`${admitted ? 'refuses' : 'admits'} ${what}`)
  }
  if (limits?.length !== undefined) {
    const [min, max] = limits.length
    expect('a'.repeat(min), true, `${min} chars`)
    expect('a'.repeat(max), true, `${max} chars`)
    if (min > 0) expect('a'.repeat(min - 1), false, `${min - 1} chars`)
    expect('a'.repeat(max + 1), false, `${max + 1} chars`)
  }
  for (const good of limits?.chars?.good ?? []) expect(good, true, JSON.stringify(good))
  for (const bad of limits?.chars?.bad ?? []) expect(bad, false, JSON.stringify(bad))
  if (limits?.range !== undefined) {
    const [min, max] = limits.range
    for (const n of [min, max]) expect(n, true, String(n))
    for (const n of [min - 1, max + 1]) expect(n, false, String(n))
  }
  if (limits?.default !== undefined && schema?.default !== limits.default) problems.push(`default ${String(schema?.default)} (API.md: ${limits.default})`)
  return problems
}

// ---------------------------------------------------------------------------------------------
// API.md's socket tables, as AsyncAPI should render them.

/** Frame types and the fields API.md names for each, per direction (replies are server frames). */
const CLIENT_FRAMES: Readonly<Record<string, readonly string[]>> = {
  join: ['room', 'afterSeq'],
  leave: ['room'],
  message: ['room', 'body', 'clientMsgId'],
  typing: ['room', 'typing'],
  read: ['room', 'seq'],
  auth: ['token'],
  ping: []
}
const SERVER_FRAMES: Readonly<Record<string, readonly string[]>> = {
  welcome: ['user', 'heartbeat', 'expiresAt'],
  message: MESSAGE,
  typing: ['room', 'userId', 'username', 'typing'],
  presence: ['room', 'userId', 'username', 'status'],
  receipt: ['room', 'userId', 'username', 'readSeq'],
  error: ['code', 'message', 'ref'],
  joined: ['room', 'lastSeq', 'online', 'readSeq', 'ref'],
  left: ['room', 'ref'],
  ack: ['room', 'id', 'seq', 'clientMsgId', 'createdAt', 'ref'],
  read: ['room', 'readSeq', 'ref'],
  authed: ['expiresAt', 'ref'],
  pong: ['ref']
}
const SOCKET_ERROR_CODES = ['bad_request', 'unauthorized', 'forbidden', 'not_found', 'rate_limited', 'unavailable', 'internal']

interface DocumentedFrame { readonly type: unknown, readonly props: Record<string, any>, readonly where: string }

/** The payload of an AsyncAPI 3 message: a schema, or a multi-format schema object around one. */
function payloadSchema (doc: unknown, message: any): any {
  const payload = deref(doc, deref(doc, message)?.payload)
  return typeof payload?.schemaFormat === 'string' && payload.schema !== undefined ? deref(doc, payload.schema) : payload
}

/** Per operation action (`send`/`receive`), the frames its messages describe. */
function framesByAction (doc: any): Map<string, DocumentedFrame[]> {
  const byAction = new Map<string, DocumentedFrame[]>()
  for (const [name, raw] of Object.entries(doc.operations ?? {})) {
    const op = deref(doc, raw)
    const channel = deref(doc, op?.channel)
    // An operation without `messages` carries every message of its channel.
    const messages: any[] = Array.isArray(op?.messages) && op.messages.length > 0 ? op.messages : Object.values(channel?.messages ?? {})
    const frames = messages.map((m, i) => {
      const { props } = objectShape(doc, payloadSchema(doc, m))
      return { type: constant(props.type), props, where: `operations.${name}.messages[${i}]` }
    })
    byAction.set(op?.action, [...byAction.get(op?.action) ?? [], ...frames])
  }
  return byAction
}

// ---------------------------------------------------------------------------------------------

eachBackend(t, async (t, backend) => {
  // A generous per-socket frame limit (this server's WS_RATE / WS_BURST): the pipelined sends
  // below count messages, not the flood limit.
  const { api, baseUrl } = await startTestServer(t, backend, { env: { WS_RATE: '1000', WS_BURST: '1000' } })
  /** Room ids, user ids and usernames this file created: no metric label may carry one. */
  const created = { rooms: [] as string[], users: [] as Array<{ id: string, username: string }> }
  const user = async (prefix: string): Promise<{ id: string, username: string, token: string }> => {
    const u = await api.user(prefix)
    created.users.push(u)
    return u
  }
  const room = async (owner: { token: string }, label: string): Promise<string> => {
    const id = uniqueRoomId('ops', label)
    await createRoom(api, owner, id)
    created.rooms.push(id)
    return id
  }

  t.test('GET /health: 200 {status: "ok"}; GET /ready: 200 while up', async (t) => {
    const health = await api.request('GET', '/health')
    t.equal(health.status, 200, '/health: 200')
    t.match(health.headers.get('content-type') ?? '', /^application\/json/, '/health: JSON')
    t.equal(health.body?.status, 'ok', '/health: status "ok"')
    const ready = await api.request('GET', '/ready')
    t.equal(ready.status, 200, `/ready: 200 with the database answering (${ready.text.slice(0, 200)})`)
  })

  t.test('GET /metrics: Prometheus text format, open without METRICS_TOKEN, with the named series', async (t) => {
    const { res, expo } = await scrape(api)
    t.equal(res.status, 200, 'open when METRICS_TOKEN is empty: 200 without Authorization')
    t.match(res.headers.get('content-type') ?? '', EXPOSITION_TYPE, `a Prometheus / OpenMetrics content type (${res.headers.get('content-type')})`)
    t.strictSame(expo.problems, [], 'the exposition parses: no malformed line, one TYPE per family before its samples, families grouped')
    t.ok(expo.samples.length > 0, `samples present (${expo.samples.length})`)

    for (const { sample, type } of CHAT_SERIES) {
      const family = type === 'counter' ? counterFamily(expo, sample) : expo.families.get(sample)
      t.equal(family?.type, type, `${sample}: # TYPE ${type}`)
      t.ok(typeof family?.help === 'string' && family.help.trim() !== '', `${sample}: a # HELP text`)
      if (type === 'histogram') {
        t.ok(hasSample(expo, `${sample}_bucket`) && hasSample(expo, `${sample}_sum`) && hasSample(expo, `${sample}_count`), `${sample}: _bucket, _sum and _count samples`)
        t.strictSame(histogramProblems(expo, sample), [], `${sample}: buckets with le incl. +Inf, cumulative, +Inf == _count, a _sum`)
      } else {
        t.ok(hasSample(expo, sample), `${sample}: a sample`)
      }
    }
    t.ok(total(expo, 'chat_slow_consumer_closes_total') >= 0, 'chat_slow_consumer_closes_total is a count')

    // Node's default process metrics (prom-client's collectDefaultMetrics and the like).
    t.ok(hasSample(expo, 'process_cpu_user_seconds_total') || hasSample(expo, 'process_cpu_seconds_total'), 'default metrics: process CPU seconds')
    t.ok(hasSample(expo, 'nodejs_heap_size_used_bytes') || hasSample(expo, 'process_resident_memory_bytes'), 'default metrics: heap or resident memory')
    t.ok(total(expo, 'process_cpu_user_seconds_total') + total(expo, 'process_cpu_seconds_total') > 0, 'the process has used some CPU')
  })

  t.test('GET /metrics: chat_sockets counts the sockets open on this node', async (t) => {
    const alice = await user('sockets')
    const bob = await user('sockets')
    const before = await scrapeUntil(api, (e) => total(e, 'chat_sockets') === 0)
    t.equal(total(before, 'chat_sockets'), 0, 'no socket open: 0')

    const sockets: ConnectedSocket[] = []
    for (const u of [alice, bob, alice]) sockets.push(await connectUntilTeardown(t, baseUrl, u.token))
    const three = await scrapeUntil(api, (e) => total(e, 'chat_sockets') === 3)
    t.equal(total(three, 'chat_sockets'), 3, 'three sockets (two of one user): 3')

    await sockets[0]!.close()
    const two = await scrapeUntil(api, (e) => total(e, 'chat_sockets') === 2)
    t.equal(total(two, 'chat_sockets'), 2, 'one closed: 2')

    sockets[1]!.ws.terminate() // without a close frame: the server notices the TCP close
    await sockets[2]!.close()
    const none = await scrapeUntil(api, (e) => total(e, 'chat_sockets') === 0)
    t.equal(total(none, 'chat_sockets'), 0, 'all closed (one dropped without a close frame): back to 0')
  })

  t.test('GET /metrics: stored messages, ack latency and write batches move by frame and by REST', async (t) => {
    const alice = await user('writer')
    const roomId = await room(alice, 'metrics')
    const socket = await connectUntilTeardown(t, baseUrl, alice.token)
    t.equal((await socket.request({ type: 'join', room: roomId })).type, 'joined', 'joined')

    // By frame: ten messages pipelined (so batches may hold several), each acked.
    const n0 = messageNumbers((await scrape(api)).expo)
    const FRAMES = 10
    const replies: Array<Promise<Frame>> = []
    for (let i = 0; i < FRAMES; i++) replies.push(socket.request({ type: 'message', room: roomId, body: `frame ${i}`, clientMsgId: `f-${i}` }))
    const acks = await Promise.all(replies)
    t.ok(acks.every((a) => a.type === 'ack'), `${FRAMES} acks`)
    const n1 = messageNumbers(await scrapeUntil(api, (e) => {
      const n = messageNumbers(e)
      return n.stored >= n0.stored + FRAMES && n.acks >= n0.acks + FRAMES && n.batchSum >= n0.batchSum + FRAMES
    }))
    t.equal(n1.stored - n0.stored, FRAMES, `${STORED}: +${FRAMES} for ${FRAMES} messages by frame`)
    t.equal(n1.acks - n0.acks, FRAMES, `${ACK}_count: +${FRAMES} (one observation per acked frame)`)
    t.ok(n1.ackSum > n0.ackSum && n1.ackSum - n0.ackSum < FRAMES * 10, `${ACK}_sum grew by some seconds, not more than 10 s each (${n1.ackSum - n0.ackSum})`)
    t.equal(n1.batchSum - n0.batchSum, FRAMES, `${BATCH}_sum: +${FRAMES} (every message is in exactly one batch)`)
    t.ok(n1.batches - n0.batches >= 1 && n1.batches - n0.batches <= FRAMES, `${BATCH}_count: between 1 and ${FRAMES} batches (${n1.batches - n0.batches})`)

    // By REST: POST /rooms/:id/messages, "message received, by frame or REST, to its ack or response".
    const POSTS = 4
    const posted = await Promise.all(Array.from({ length: POSTS }, async (_, i) =>
      await api.request('POST', `/rooms/${encodeURIComponent(roomId)}/messages`, { token: alice.token, json: { body: `rest ${i}`, clientMsgId: `r-${i}` } })))
    t.strictSame(posted.map((r) => r.status), Array(POSTS).fill(201), `${POSTS} messages stored by REST: 201 each`)
    const n2 = messageNumbers(await scrapeUntil(api, (e) => {
      const n = messageNumbers(e)
      return n.stored >= n1.stored + POSTS && n.acks >= n1.acks + POSTS
    }))
    t.equal(n2.stored - n1.stored, POSTS, `${STORED}: +${POSTS} for ${POSTS} messages by REST`)
    t.equal(n2.acks - n1.acks, POSTS, `${ACK}_count: +${POSTS} (REST responses are observed too)`)
    t.ok(n2.ackSum > n1.ackSum, `${ACK}_sum grew with the REST messages (${n2.ackSum - n1.ackSum})`)
    t.comment(`${BATCH}_sum moved by ${n2.batchSum - n1.batchSum} for ${POSTS} REST messages (API.md does not say whether REST writes are batched)`)

    // The same clientMsgId again: the original ack / 200, "nothing stored or sent twice".
    const again = await socket.request({ type: 'message', room: roomId, body: 'frame 0', clientMsgId: 'f-0' })
    t.equal(again.type, 'ack', 'a repeated clientMsgId by frame: ack')
    const repost = await api.request('POST', `/rooms/${encodeURIComponent(roomId)}/messages`, { token: alice.token, json: { body: 'rest 0', clientMsgId: 'r-0' } })
    t.equal(repost.status, 200, 'a repeated clientMsgId by REST: 200')
    await delay(300)
    const n3 = messageNumbers((await scrape(api)).expo)
    t.equal(n3.stored, n2.stored, `${STORED}: unchanged by repeats (nothing stored twice)`)

    // A refused message is not stored either.
    const refused = await socket.request({ type: 'message', room: roomId, body: '' })
    t.equal(refused.type, 'error', 'an empty body: error')
    await delay(100)
    t.equal(messageNumbers((await scrape(api)).expo).stored, n3.stored, `${STORED}: unchanged by a refused message`)

    const { expo } = await scrape(api)
    t.strictSame(histogramProblems(expo, ACK), [], `${ACK}: still well formed after traffic`)
    t.strictSame(histogramProblems(expo, BATCH), [], `${BATCH}: still well formed after traffic`)
  })

  t.test('GET /metrics: no label carries a room id, user id, username or raw path (the issue: labels bounded)', async (t) => {
    const carol = await user('labels')
    const roomId = await room(carol, 'labels')
    const unknownPath = `/no-such-route-${randomBytes(6).toString('hex')}`
    // Traffic that touches room and user ids on every path: REST routes with ids in the URL, a 404, sockets.
    const calls = [
      api.request('GET', `/rooms/${encodeURIComponent(roomId)}`, { token: carol.token }),
      api.request('GET', `/rooms/${encodeURIComponent(roomId)}/messages`, { token: carol.token }),
      api.request('GET', `/rooms/${encodeURIComponent(roomId)}/presence`, { token: carol.token }),
      api.request('GET', `/users/${carol.id}/presence`, { token: carol.token }),
      api.request('GET', `/users?username=${carol.username}`, { token: carol.token }),
      api.request('GET', unknownPath)
    ]
    await Promise.all(calls)
    const socket = await connectUntilTeardown(t, baseUrl, carol.token)
    await socket.request({ type: 'join', room: roomId })
    await socket.request({ type: 'message', room: roomId, body: 'labelled?' })
    await socket.request({ type: 'join', room: `${roomId}-missing` })

    const { expo } = await scrape(api)
    const rooms = [...created.rooms, `${roomId}-missing`]
    const offending: string[] = []
    for (const s of expo.samples) {
      for (const [name, value] of Object.entries(s.labels)) {
        const where = `${s.name}{${name}="${value}"}`
        if (rooms.some((r) => value.includes(r))) offending.push(`${where}: a room id`)
        if (created.users.some((u) => value.includes(u.username))) offending.push(`${where}: a username`)
        if (value.includes(unknownPath)) offending.push(`${where}: a raw request path`)
        if (created.users.some((u) => value.includes(`/users/${u.id}/`))) offending.push(`${where}: a raw path with a user id`)
        // Numeric label values that are not ids by nature: bucket bounds and Node's version numbers.
        const numericByNature = name === 'le' || name === 'quantile' || s.name === 'nodejs_version_info'
        if (!numericByNature && created.users.some((u) => value === u.id)) offending.push(`${where}: equals a user id`)
      }
    }
    t.strictSame(offending, [], `no label value names what a user created (${created.rooms.length + 1} rooms, ${created.users.length} users checked)`)
  })

  t.test('GET /docs: a browsable HTML page whose assets load', async (t) => {
    const res = await fetch(`${baseUrl}/docs`)
    const html = await res.text()
    t.equal(res.status, 200, `/docs: 200 (after redirects, at ${res.url})`)
    t.match(res.headers.get('content-type') ?? '', /^text\/html/, '/docs: text/html')
    t.match(html, /<html[\s>]/i, '/docs: an HTML document')
    const assets = [...html.matchAll(/<(?:script|link)\b[^>]*?\b(?:src|href)\s*=\s*["']([^"']+)["']/gi)].map((m) => m[1]!)
      .filter((a) => !a.startsWith('data:'))
    const statuses = await Promise.all(assets.map(async (a) => {
      const asset = await fetch(new URL(a, res.url))
      await asset.arrayBuffer()
      return `${a}: ${asset.status}`
    }))
    t.strictSame(statuses.filter((s) => !s.endsWith(': 200')), [], `every script and stylesheet the page loads answers 200 (${assets.length})`)
  })

  t.test('GET /docs/json: OpenAPI 3 with every route of API.md, its parameters, body and responses', async (t) => {
    const res = await api.request('GET', '/docs/json')
    t.equal(res.status, 200, '/docs/json: 200')
    t.match(res.headers.get('content-type') ?? '', /^application\/json/, '/docs/json: JSON')
    const doc = res.body
    t.ok(typeof doc?.openapi === 'string' && doc.openapi.startsWith('3.'), `openapi is 3.x (${String(doc?.openapi)})`)
    t.strictSame(unresolvedRefs(doc), [], 'every $ref resolves inside the document')
    let valid = 'valid'
    try {
      await SwaggerParser.validate(structuredClone(doc))
    } catch (error) {
      valid = (error as Error).message
    }
    t.equal(valid, 'valid', 'a valid OpenAPI document (@apidevtools/swagger-parser)')

    const bearerSchemes = Object.entries(doc?.components?.securitySchemes ?? {})
      .filter(([, s]: [string, any]) => deref(doc, s)?.type === 'http' && String(deref(doc, s)?.scheme).toLowerCase() === 'bearer')
      .map(([name]) => name)
    t.ok(bearerSchemes.length > 0, 'components.securitySchemes has an http bearer scheme')

    for (const route of ROUTES) {
      const label = `${route.method.toUpperCase()} ${route.path}`
      const item = deref(doc, doc?.paths?.[route.path])
      const op = item?.[route.method]
      t.ok(op !== undefined, `${label}: listed`)
      if (op === undefined) continue
      const params: any[] = [...item.parameters ?? [], ...op.parameters ?? []].map((p) => deref(doc, p))

      const problems: string[] = []
      for (const name of [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!)) {
        const p = params.find((p) => p?.in === 'path' && p.name === name)
        if (p?.required !== true) problems.push(`path parameter ${name}: ${p === undefined ? 'missing' : 'not required'}`)
      }
      for (const [name, limits] of Object.entries(route.query ?? {})) {
        const p = params.find((p) => p?.in === 'query' && p.name === name)
        if (p === undefined) problems.push(`query parameter ${name}: missing`)
        else problems.push(...limitMismatches(deref(doc, p.schema) ?? p, limits).map((m) => `query ${name}: ${m}`))
      }
      if (route.body !== undefined) {
        const schema = jsonSchemaOf(doc, op.requestBody)
        if (schema === undefined) problems.push('no application/json requestBody')
        else {
          const { props, required } = objectShape(doc, schema)
          for (const [name, { optional = false, limits }] of Object.entries(route.body)) {
            if (props[name] === undefined) problems.push(`body field ${name}: missing`)
            if (required.has(name) === optional) problems.push(`body field ${name}: ${optional ? 'required, API.md makes it optional' : 'not required'}`)
            problems.push(...limitMismatches(props[name], limits).map((m) => `body ${name}: ${m}`))
          }
        }
      }
      for (const [status, fields] of Object.entries(route.responses)) {
        const response = responseFor(op, Number(status))
        if (response === undefined) {
          problems.push(`response ${status}: missing`)
          continue
        }
        if (fields === null) continue
        const { props } = objectShape(doc, jsonSchemaOf(doc, response))
        const missing = fields.filter((f) => props[f] === undefined)
        if (missing.length > 0) problems.push(`response ${status}: no ${missing.join(', ')} in its JSON schema`)
      }
      if (route.bearer !== undefined) {
        const security: any[] = op.security ?? doc.security ?? []
        const takesBearer = security.some((requirement) => Object.keys(requirement ?? {}).some((k) => bearerSchemes.includes(k)))
        if (takesBearer !== route.bearer) problems.push(route.bearer ? 'no bearer security requirement' : 'a bearer security requirement API.md does not make')
      }
      t.strictSame(problems, [], `${label}: parameters, body and responses as API.md gives them`)
    }
  })

  t.test('GET /docs/asyncapi.json: AsyncAPI 3 naming every frame type of API.md, valid per @asyncapi/parser', async (t) => {
    const res = await api.request('GET', '/docs/asyncapi.json')
    t.equal(res.status, 200, '/docs/asyncapi.json: 200')
    t.match(res.headers.get('content-type') ?? '', /^application\/json/, '/docs/asyncapi.json: JSON')
    const doc = res.body
    t.ok(typeof doc?.asyncapi === 'string' && doc.asyncapi.startsWith('3.'), `asyncapi is 3.x (${String(doc?.asyncapi)})`)
    t.strictSame(unresolvedRefs(doc), [], 'every $ref resolves inside the document')

    const { document, diagnostics } = await new Parser().parse(res.text)
    const errors = diagnostics.filter((d) => Number(d.severity) === Number(DiagnosticSeverity.Error)).map((d) => `${d.path.join('.')}: ${d.message}`)
    t.strictSame(errors, [], '@asyncapi/parser: no error diagnostics')
    t.ok(document !== undefined, '@asyncapi/parser: a document')

    const addresses = Object.values(doc?.channels ?? {}).map((c) => deref(doc, c)?.address)
    t.ok(addresses.some((a) => typeof a === 'string' && a.split('?')[0] === '/ws'), `a channel at /ws (${JSON.stringify(addresses)})`)

    const byAction = framesByAction(doc)
    const actionOf = (type: string, fields: readonly string[]): string[] =>
      [...byAction].filter(([, frames]) => frames.some((f) => f.type === type && fields.every((k) => f.props[k] !== undefined))).map(([a]) => a)
    // The document describes one application (the server, or a client of it): client frames are
    // all on one side (`receive` for the server), server frames all on the other.
    const clientSide = actionOf('join', CLIENT_FRAMES.join!)[0]
    t.ok(clientSide === 'send' || clientSide === 'receive', `join is an operation's message (action ${String(clientSide)})`)
    const serverSide = clientSide === 'send' ? 'receive' : 'send'
    for (const [type, fields] of Object.entries(CLIENT_FRAMES)) {
      t.ok(actionOf(type, [...fields, 'ref']).includes(clientSide ?? 'receive'), `client → server ${type}: a message with type "${type}" and ${[...fields, 'ref'].join(', ')}`)
    }
    for (const [type, fields] of Object.entries(SERVER_FRAMES)) {
      t.ok(actionOf(type, fields).includes(serverSide), `server → client ${type}: a message with type "${type}" and ${fields.join(', ') || 'no other field'}`)
    }

    const sent = byAction.get(clientSide ?? 'receive') ?? []
    const outgoing = sent.find((f) => f.type === 'message')
    t.strictSame(limitMismatches(outgoing?.props.body, { length: [1, 4000] }), [], 'client message: body is 1-4000 chars')
    t.strictSame(limitMismatches(outgoing?.props.clientMsgId, { length: [1, 64] }), [], 'client message: clientMsgId is 1-64 chars')
    t.strictSame(sent.filter((f) => f.props.ref?.maxLength !== 64).map((f) => f.where), [], 'every client frame: ref is at most 64 chars')
    const errorFrame = (byAction.get(serverSide) ?? []).find((f) => f.type === 'error')
    const codes = errorFrame?.props.code?.enum
    if (Array.isArray(codes)) t.strictSame(SOCKET_ERROR_CODES.filter((c) => !codes.includes(c)), [], 'error.code lists every socket error code of API.md')
  })
})

t.test('METRICS_TOKEN: Authorization: Bearer <METRICS_TOKEN> or 401; kept out of the logs (real process, LOG_LEVEL=debug)', async (t) => {
  const token = `metrics-${randomBytes(18).toString('hex')}`
  const dataDir = tempDataDir(t, 'chat-ops-')
  const server = spawnServer(t, { env: { ...spawnedServerEnv(dataDir, TEST_SECRET), LOG_LEVEL: 'debug', METRICS_TOKEN: token } })
  const port = await server.listening()
  const api = createClient(`http://127.0.0.1:${port}`)
  const account = await registerAndLogIn(api, `ops_${process.pid}`)

  const refused: Array<[string, Record<string, string>]> = [
    ['no Authorization header', {}],
    ['a wrong token', { authorization: 'Bearer not-the-metrics-token' }],
    ['the token minus its last character', { authorization: `Bearer ${token.slice(0, -1)}` }],
    ['the token plus a character', { authorization: `Bearer ${token}x` }],
    ['the token without the Bearer scheme', { authorization: token }],
    ['the token as Basic credentials', { authorization: `Basic ${Buffer.from(`metrics:${token}`).toString('base64')}` }],
    ["a user's valid access token", { authorization: `Bearer ${account.token}` }]
  ]
  for (const [label, headers] of refused) {
    const res = await api.request('GET', '/metrics', { headers })
    assertError(t, res, 401, 'unauthorized', label)
    t.notOk(res.text.includes(token), `${label}: the answer does not echo the token`)
  }

  const { res, expo } = await scrape(api, { authorization: `Bearer ${token}` })
  t.equal(res.status, 200, 'Bearer <METRICS_TOKEN>: 200')
  t.match(res.headers.get('content-type') ?? '', EXPOSITION_TYPE, 'Bearer <METRICS_TOKEN>: the exposition')
  t.ok(hasSample(expo, 'chat_sockets'), 'Bearer <METRICS_TOKEN>: chat_sockets in it')
  t.equal((await api.request('GET', '/health')).status, 200, 'other routes are not behind METRICS_TOKEN: /health 200')
  t.equal((await api.request('GET', '/docs/json')).status, 200, 'other routes are not behind METRICS_TOKEN: /docs/json 200')

  // SIGTERM and the exit: every log line is flushed before the output is searched.
  const exit = await server.stop('SIGTERM', 20_000)
  t.equal(exit.code, 0, 'the server stops cleanly')
  const output = server.stdout() + server.stderr()
  t.ok(server.logs.some((l) => l.msg.startsWith('listening on')), 'the server log was captured')
  t.comment(`${server.logs.length} log lines at debug, ${server.logs.filter((l) => JSON.stringify(l).includes('/metrics')).length} mentioning /metrics`)
  t.notOk(output.includes(token), 'METRICS_TOKEN appears nowhere in stdout or stderr')
})
