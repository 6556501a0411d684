// The hand-written history peer: node:http and a `pg` pool of 10. GET /rooms/:id/messages verifies
// the Bearer token (HS256 with node:crypto), runs one keyset query joined with users for the
// username, and answers `{messages, hasMore}` shaped as in API.md.
import { createServer, type ServerResponse } from 'node:http'
import pg from 'pg'
import { bearerToken, verifyToken } from '../jwt.js'
import { requiredEnv } from './frames.js'

interface Row {
  id: string
  seq: string
  user_id: string
  username: string
  body: string
  client_msg_id: string | null
  created_at: Date
}

const port = Number(requiredEnv('PORT'))
const secret = requiredEnv('JWT_SECRET')
const pool = new pg.Pool({ connectionString: requiredEnv('DATABASE_URL'), max: 10 })

const columns = 'm.id, m.seq, m.user_id, u.username, m.body, m.client_msg_id, m.created_at'
const newest = `SELECT ${columns} FROM messages m JOIN users u ON u.id = m.user_id
  WHERE m.room = $1 ORDER BY m.seq DESC LIMIT $2`
const before = `SELECT ${columns} FROM messages m JOIN users u ON u.id = m.user_id
  WHERE m.room = $1 AND m.seq < $3 ORDER BY m.seq DESC LIMIT $2`
const after = `SELECT ${columns} FROM messages m JOIN users u ON u.id = m.user_id
  WHERE m.room = $1 AND m.seq > $3 ORDER BY m.seq ASC LIMIT $2`

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function fail(res: ServerResponse, status: number, error: string, message: string): void {
  reply(res, status, { error, message })
}

function integerParam(value: string | null, min: number, max: number): number | null | undefined {
  if (value === null) return undefined
  if (!/^\d+$/.test(value)) return null
  const n = Number(value)
  return n >= min && n <= max ? n : null
}

async function messages(res: ServerResponse, room: string, query: URLSearchParams): Promise<void> {
  const limit = integerParam(query.get('limit'), 1, 100) ?? 50
  const beforeSeq = integerParam(query.get('before'), 0, Number.MAX_SAFE_INTEGER)
  const afterSeq = integerParam(query.get('after'), 0, Number.MAX_SAFE_INTEGER)
  if (limit === null || beforeSeq === null || afterSeq === null) return fail(res, 400, 'bad_request', 'invalid query')
  const [text, values] =
    afterSeq !== undefined ? [after, [room, limit + 1, afterSeq]]
    : beforeSeq !== undefined ? [before, [room, limit + 1, beforeSeq]]
    : [newest, [room, limit + 1]]
  const { rows } = await pool.query<Row>(text, values)
  const hasMore = rows.length > limit
  const page = rows.slice(0, limit)
  if (afterSeq === undefined) page.reverse()
  reply(res, 200, {
    messages: page.map((r) => ({
      id: r.id,
      room,
      seq: Number(r.seq),
      userId: r.user_id,
      username: r.username,
      body: r.body,
      clientMsgId: r.client_msg_id,
      createdAt: r.created_at.toISOString()
    })),
    hasMore
  })
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://peer')
  if (url.pathname === '/health') return reply(res, 200, { status: 'ok' })
  const route = /^\/rooms\/([^/]+)\/messages$/.exec(url.pathname)
  if (req.method !== 'GET' || route === null) return fail(res, 404, 'not_found', 'no such route')
  if (verifyToken(bearerToken(req.headers.authorization), secret) === null) return fail(res, 401, 'unauthorized', 'bad token')
  messages(res, decodeURIComponent(route[1]!), url.searchParams).catch((error: unknown) => {
    console.error(error)
    fail(res, 500, 'internal', 'query failed')
  })
})

server.listen(port, '127.0.0.1', () => console.log(`history peer listening on 127.0.0.1:${port}`))
process.once('SIGTERM', () => process.exit(0))
