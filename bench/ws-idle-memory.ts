// Server memory per idle WebSocket: `npm run bench:memory [-- --sockets 10000]`.
// N sockets (one user each; default 10,000, at most 10,000 users in ws-server, and the process
// file limit here is 20,000) connect, then each joins a room of 10 (sockets 0-9 one room, 10-19
// the next, ...), so every socket holds a subscription, a presence entry and room-mates' events.
// The server's RSS (from /proc: once quiet, a full GC, then the median of several samples) is taken before the
// sockets, with them connected, and with them joined; the deltas divided by N are the figures.
// DATABASE_URL (an admin URL): a fresh Postgres database for the run; otherwise embedded.
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { wsIngestRoom } from './fixture.js'
import { sampleProcess } from './process-stats.js'
import { eachLimited, signToken, startBenchServer, type BenchServer, type BenchUser } from './ws-server-process.js'

const argv = process.argv.slice(2)
const at = argv.indexOf('--sockets')
const SOCKETS = at < 0 ? 10_000 : Number(argv[at + 1])
if (!Number.isInteger(SOCKETS) || SOCKETS < 10 || SOCKETS > 10_000) throw new Error('--sockets must be 10..10000')
const ROOM_SIZE = 10
/** How long the server is left alone before its RSS is sampled, and how many samples over how long. */
const SETTLE_MS = 3000
const SAMPLES = 7
const SAMPLE_EVERY_MS = 500

async function delay (ms: number): Promise<void> { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** The median of a few RSS samples of a quiet server after a full GC, in bytes. */
async function quietRss (server: BenchServer): Promise<number> {
  const { pid } = server
  await delay(SETTLE_MS)
  server.collectGarbage()
  await delay(SAMPLE_EVERY_MS)
  const samples: number[] = []
  for (let i = 0; i < SAMPLES; i++) {
    samples.push(sampleProcess(pid).rssBytes)
    await delay(SAMPLE_EVERY_MS)
  }
  samples.sort((a, b) => a - b)
  return samples[Math.floor(SAMPLES / 2)]!
}

async function openSocket (port: number, user: BenchUser): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, ['chat.v1', `bearer.${signToken(user)}`], { perMessageDeflate: false, handshakeTimeout: 10_000 })
  await new Promise<void>((resolve, reject) => {
    // `welcome` is the first frame: the server has set the socket up.
    ws.once('message', () => resolve())
    ws.once('error', reject)
    ws.once('unexpected-response', (_request, response) => reject(new Error(`upgrade refused with HTTP ${response.statusCode ?? '?'}`)))
  })
  ws.on('error', () => {})
  return ws
}

async function joinRoom (ws: WebSocket, room: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no joined for ${room} within 10 s`)), 10_000)
    const onMessage = (data: WebSocket.RawData): void => {
      const frame = JSON.parse(data.toString()) as { type: string, ref?: string, online?: unknown[], code?: string }
      if (frame.ref !== 'join') return
      clearTimeout(timer)
      ws.off('message', onMessage)
      if (frame.type === 'joined') resolve(frame.online?.length ?? 0)
      else reject(new Error(`join ${room} answered ${frame.type} ${frame.code ?? ''}`))
    }
    ws.on('message', onMessage)
    ws.send(JSON.stringify({ type: 'join', room, ref: 'join' }))
  })
}

const mb = (bytes: number): number => Math.round(bytes / 2 ** 20)

async function main (): Promise<void> {
  const adminUrl = process.env.DATABASE_URL ?? ''
  const database = adminUrl === '' ? 'embedded' : 'postgres'
  process.stderr.write(`idle memory: ${SOCKETS} sockets in rooms of ${ROOM_SIZE}, ${database} database\n`)
  let server: BenchServer | undefined
  const sockets: WebSocket[] = []
  try {
    server = await startBenchServer({ users: SOCKETS, adminUrl })
    const { port, users } = server
    const before = await quietRss(server)
    process.stderr.write(`  server RSS before the sockets: ${mb(before)} MB\n`)

    await eachLimited(users.slice(0, SOCKETS), 50, async (user) => { sockets.push(await openSocket(port, user)) })
    const connected = await quietRss(server)
    process.stderr.write(`  ${SOCKETS} connected: ${mb(connected)} MB\n`)

    let largestOnline = 0
    await eachLimited(sockets, 50, async (ws, i) => {
      largestOnline = Math.max(largestOnline, await joinRoom(ws, wsIngestRoom(i - (i % ROOM_SIZE))))
    })
    if (largestOnline > ROOM_SIZE) throw new Error(`a joined listed ${largestOnline} online in a room of ${ROOM_SIZE}`)
    const joined = await quietRss(server)
    const open = sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length
    if (open !== SOCKETS) throw new Error(`only ${open} of ${SOCKETS} sockets are still open`)

    const perSocket = (bytes: number): number => Math.round(bytes / SOCKETS)
    const result = {
      date: new Date().toISOString(),
      database,
      node: process.version,
      sockets: SOCKETS,
      roomSize: ROOM_SIZE,
      rssMb: { before: mb(before), connected: mb(connected), joined: mb(joined) },
      bytesPerSocket: { connected: perSocket(connected - before), joined: perSocket(joined - before) }
    }
    process.stderr.write(`  ${SOCKETS} joined: ${mb(joined)} MB\n`)
    const table = [
      '| sockets | database | RSS before MB | connected MB | joined MB | per connected socket | per joined socket |',
      '|---:|---|---:|---:|---:|---:|---:|',
      `| ${SOCKETS.toLocaleString('en-US')} | ${database} | ${result.rssMb.before} | ${result.rssMb.connected} | ${result.rssMb.joined} | ${(result.bytesPerSocket.connected / 1024).toFixed(2)} KB | ${(result.bytesPerSocket.joined / 1024).toFixed(2)} KB |`
    ].join('\n')
    process.stdout.write(`${table}\n`)
    // The source tree's bench/results, also when run from the build in dist/bench.
    const here = dirname(fileURLToPath(import.meta.url))
    const dir = join(here.endsWith(join('dist', 'bench')) ? join(here, '..', '..', 'bench') : here, 'results')
    mkdirSync(dir, { recursive: true })
    const file = join(dir, `memory-${result.date.slice(0, 19).replaceAll(':', '-')}.json`)
    writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`)
    process.stderr.write(`  written to ${file}\n`)
  } finally {
    for (const ws of sockets) ws.terminate()
    await server?.stop()
  }
}

main().then(() => process.exit(0), (error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})
