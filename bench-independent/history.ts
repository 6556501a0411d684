// The history scenario: `GET /rooms/:id/messages?limit=50` with a Bearer token under autocannon;
// server CPU per request from /proc, Postgres backends' CPU per request, and latency percentiles.
import autocannon from 'autocannon'
import { backendCpu, backendCpuDelta } from './databases.js'
import { processTreeCpuSeconds } from './processes.js'

export interface HistoryResult {
  requests: number
  non2xx: number
  errors: number
  requestsPerSec: number
  p50: number
  p99: number
  serverCpuPerRequestUs: number
  postgresCpuPerRequestUs: number
  serverCpuPct: number
  /** what the first response looked like, for the shape check against API.md */
  sample: { status: number; messages: number; hasMore: unknown; keys: string[] }
}

export interface HistoryOptions {
  baseUrl: string
  room: string
  token: string
  serverPid: number
  adminUrl: string
  database: string
  connections: number
  seconds: number
  warmupSeconds: number
  /** a fixed total request rate (autocannon overallRate) so both servers carry the same load; 0: as fast as they answer */
  rate: number
}

export const messageKeys = ['body', 'clientMsgId', 'createdAt', 'id', 'room', 'seq', 'userId', 'username']

async function sample(url: string, token: string): Promise<HistoryResult['sample']> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } })
  const body = (await res.json()) as { messages?: unknown; hasMore?: unknown }
  const messages = Array.isArray(body.messages) ? (body.messages as unknown[]) : []
  const first: unknown = messages[0]
  const keys = typeof first === 'object' && first !== null ? Object.keys(first).sort() : []
  return { status: res.status, messages: messages.length, hasMore: body.hasMore, keys }
}

export async function runHistory(options: HistoryOptions): Promise<HistoryResult> {
  const url = `${options.baseUrl}/rooms/${encodeURIComponent(options.room)}/messages?limit=50`
  const first = await sample(url, options.token)
  if (first.status !== 200 || first.messages !== 50) throw new Error(`history sanity check failed at ${url}: ${JSON.stringify(first)}`)
  const load = {
    url,
    connections: options.connections,
    headers: { authorization: `Bearer ${options.token}` },
    ...(options.rate > 0 ? { overallRate: options.rate } : {})
  }
  await autocannon({ ...load, duration: options.warmupSeconds })

  const pg0 = await backendCpu(options.adminUrl, options.database)
  const server0 = processTreeCpuSeconds(options.serverPid)
  const wall0 = Date.now()
  const result = await autocannon({ ...load, duration: options.seconds })
  const serverCpu = processTreeCpuSeconds(options.serverPid) - server0
  const wallSeconds = (Date.now() - wall0) / 1000
  const postgresCpu = backendCpuDelta(pg0, await backendCpu(options.adminUrl, options.database))

  const requests = result.requests.total
  return {
    requests,
    non2xx: result.non2xx,
    errors: result.errors,
    requestsPerSec: requests / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    serverCpuPerRequestUs: (serverCpu * 1e6) / requests,
    postgresCpuPerRequestUs: (postgresCpu * 1e6) / requests,
    serverCpuPct: (100 * serverCpu) / wallSeconds,
    sample: first
  }
}
