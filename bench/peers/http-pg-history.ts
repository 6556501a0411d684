// Peer: a history page as a developer would serve it by hand: node:http, the Bearer JWT checked
// with node:crypto (HS256, the bench's secret, expiry), and one keyset query joining users for the
// username, through a `pg` pool of 10 (1 on the embedded database). The same JSON body as ours
// (API.md: `{messages: [Message], hasMore}`, ascending seq, the newest `limit` below `before`).
// It reads the database our REST server seeded: the run's Postgres database (DATABASE_URL), or the
// embedded one in DATA_DIR, which it leaves in place.
// `node dist/bench/peers/http-pg-history.js`; prints {"port": N} when ready.
import { createServer, type ServerResponse } from 'node:http'
import { serveUntilSignalled } from '../server-lifecycle.js'
import { verifyToken } from './jwt.js'
import { openPeerDatabase } from './peer-database.js'

interface Row {
  id: string
  room_id: string
  seq: string
  user_id: string
  username: string
  body: string
  client_msg_id: string | null
  created_at: Date
}

const PATH = /^\/rooms\/([^/?]+)\/messages$/
const MAX_SEQ = Number.MAX_SAFE_INTEGER
// Generated keys (messages sent without a clientMsgId) are shown as null, as ours does.
const PAGE = `select m.id, m.room_id, m.seq, m.user_id, u.username, m.body, m.created_at,
    case when m.client_msg_id_generated then null else m.client_msg_id end as client_msg_id
  from messages m join users u on u.id = m.user_id
  where m.room_id = $1 and m.seq < $2
  order by m.seq desc
  limit $3`

const database = await openPeerDatabase({ max: 10, dataDir: process.env.DATA_DIR })

function reply (res: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

const error = (code: string, message: string): object => ({ error: code, message })

async function page (room: string, before: number, limit: number): Promise<object> {
  // One row more than the page says whether there is another.
  const { rows } = await database.pool.query<Row>(PAGE, [room, before, limit + 1])
  const messages = rows.slice(0, limit).reverse().map((row) => ({
    id: row.id,
    room: row.room_id,
    seq: Number(row.seq),
    userId: row.user_id,
    username: row.username,
    body: row.body,
    clientMsgId: row.client_msg_id,
    createdAt: row.created_at.toISOString()
  }))
  return { messages, hasMore: rows.length > limit }
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost')
  const room = req.method === 'GET' ? PATH.exec(url.pathname)?.[1] : undefined
  if (room === undefined) { reply(res, 404, error('not_found', 'no such route')); return }
  const authorization = req.headers.authorization ?? ''
  if (!authorization.startsWith('Bearer ') || verifyToken(authorization.slice('Bearer '.length)) === null) {
    reply(res, 401, error('unauthorized', 'invalid token'))
    return
  }
  const limit = Number(url.searchParams.get('limit') ?? 50)
  const before = Number(url.searchParams.get('before') ?? MAX_SEQ)
  if (!Number.isInteger(limit) || limit < 1 || limit > 100 || !Number.isInteger(before) || before < 0 || before > MAX_SEQ) {
    reply(res, 400, error('bad_request', 'limit 1-100, before a seq'))
    return
  }
  page(decodeURIComponent(room), before, limit).then((body) => { reply(res, 200, body) }, (failure: unknown) => {
    process.stderr.write(`http-pg-history peer: ${String(failure)}\n`)
    reply(res, 503, error('unavailable', 'database error'))
  })
})

const port = await new Promise<number>((resolve) => {
  server.listen(0, '127.0.0.1', () => { resolve((server.address() as { port: number }).port) })
})
serveUntilSignalled({ port }, async () => {
  server.close()
  server.closeAllConnections()
  await database.close()
})
