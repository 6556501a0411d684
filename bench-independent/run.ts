// Independent harness for issue 15: measures our server's socket ingest and REST history against
// hand-written peers written from API.md alone, on real Postgres, and prints the issue's ratios.
// Usage: DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npx tsx bench-independent/run.ts [--quick]
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createDatabase, databaseUrl, dropDatabase, fillPeerHistory, historyBody, setUpPeerDatabase } from './databases.js'
import { runHistory, messageKeys, type HistoryResult } from './history.js'
import { ackP99LimitMs, rampIngest, type IngestResult } from './ingest.js'
import { closeAll, connect, connectAll, newCounters, sendMany } from './load.js'
import { stopAll } from './processes.js'
import { capacityText, fixed, historyHeader, historyRow, ingestHeader, ingestRow, ratioTable, table, type Ratio } from './report.js'
import { createOurRooms, newSecret, ourToken, peerToken, repoRoot, serverEntry, startOurs, startPeer, type Running } from './servers.js'

const usage = `Usage: DATABASE_URL=<admin url> npx tsx bench-independent/run.ts [options]

  --quick               short steps (2 s per ingest step, 5 s of history load): about 2-3 minutes
  --only <scenario>     ingest or history (default: both)
  --sockets <n>         ingest sockets, each in its own room (default 200)
  --rates <list>        ingest steps in msgs/s, comma-separated
  --step-seconds <s>    seconds per ingest step (default 5, quick 2)
  --history-seconds <s> seconds of history load (default 10, quick 5)
  --connections <n>     autocannon connections for history (default 50)
  --history-messages <n> messages in the history room (default 3000)
  --history-rate <n>    hold history at n requests/s in total for both servers (default: as fast as
                        each answers), to compare CPU per request at equal load
  --log-level <level>   our server's LOG_LEVEL (default info, as shipped)
  --database-url <url>  Postgres admin URL (default: $DATABASE_URL); a fresh database per server
  --json <file>         also write every figure as JSON
  --build               run \`npm run build\` first (our server runs from dist/)
  --keep-logs           keep the servers' logs (they are kept anyway when something fails)
`

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    sockets: { type: 'string', default: '200' },
    rates: { type: 'string', default: '1000,2000,3000,5000,7500,10000,15000,20000,25000,30000,40000,50000,60000,80000,100000' },
    'step-seconds': { type: 'string' },
    'history-seconds': { type: 'string' },
    connections: { type: 'string', default: '50' },
    'history-messages': { type: 'string', default: '3000' },
    'history-rate': { type: 'string', default: '0' },
    'log-level': { type: 'string', default: 'info' },
    'database-url': { type: 'string' },
    json: { type: 'string' },
    build: { type: 'boolean', default: false },
    'keep-logs': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false }
  }
})

if (args.help) {
  console.log(usage)
  process.exit(0)
}

const adminUrl = args['database-url'] ?? process.env.DATABASE_URL ?? ''
if (adminUrl === '') {
  console.error(`DATABASE_URL (a Postgres admin URL) is required.\n\n${usage}`)
  process.exit(2)
}
if (args.only !== undefined && args.only !== 'ingest' && args.only !== 'history') {
  console.error(`--only takes ingest or history\n\n${usage}`)
  process.exit(2)
}

const settings = {
  sockets: Number(args.sockets),
  rates: args.rates.split(',').map(Number),
  stepSeconds: Number(args['step-seconds'] ?? (args.quick ? 2 : 5)),
  drainSeconds: args.quick ? 5 : 10,
  historySeconds: Number(args['history-seconds'] ?? (args.quick ? 5 : 10)),
  warmupSeconds: args.quick ? 2 : 3,
  connections: Number(args.connections),
  historyMessages: Number(args['history-messages']),
  historyRate: Number(args['history-rate']),
  logLevel: args['log-level']
}
const runIngest = args.only !== 'history'
const runHistoryScenario = args.only !== 'ingest'
const workDir = mkdtempSync(join(tmpdir(), 'bench-independent-'))
const databases = new Set<string>()
const started = Date.now()
const say = (text: string): void => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${text}`)

let cleaning: Promise<void> | undefined
function cleanup(keepLogs: boolean): Promise<void> {
  cleaning ??= (async () => {
    await stopAll()
    for (const name of databases) {
      await dropDatabase(adminUrl, name).catch((e: unknown) => console.error(`could not drop database ${name}: ${String(e)}`))
    }
    if (keepLogs) console.log(`logs kept in ${workDir}`)
    else rmSync(workDir, { recursive: true, force: true })
  })()
  return cleaning
}

let aborting = false
function abort(reason: string): void {
  if (aborting) return
  aborting = true
  console.error(`\n${reason}: stopping every process this run started and dropping its databases`)
  void cleanup(true).finally(() => process.exit(130))
}
// `on`, not `once`: Ctrl-C reaches this process twice (from the terminal and relayed by tsx), and a
// second signal without a listener would kill it before its databases are dropped.
process.on('SIGINT', () => abort('interrupted'))
process.on('SIGTERM', () => abort('terminated'))
// The whole run is bounded: a hang anywhere ends it, cleaned up, instead of running on.
const watchdog = setTimeout(() => abort('time limit reached'), (args.quick ? 6 : 20) * 60_000)
watchdog.unref()

async function withDatabase<T>(label: string, work: (name: string, url: string) => Promise<T>): Promise<T> {
  const name = `bench_indep_${label}_${process.pid}_${Date.now().toString(36)}`
  await createDatabase(adminUrl, name)
  databases.add(name)
  try {
    return await work(name, databaseUrl(adminUrl, name))
  } finally {
    await dropDatabase(adminUrl, name)
    databases.delete(name)
  }
}

async function withServer<T>(server: Running, work: (server: Running) => Promise<T>): Promise<T> {
  try {
    return await work(server)
  } finally {
    await server.process.stop()
  }
}

const username = 'bench_user'
const rooms = Array.from({ length: settings.sockets }, (_, i) => `room-${String(i).padStart(4, '0')}`)

function ingestOptions(server: Running, database: string, label: string) {
  return {
    serverPid: server.process.pid,
    adminUrl,
    database,
    rates: settings.rates,
    stepSeconds: settings.stepSeconds,
    drainSeconds: settings.drainSeconds,
    onStep: (step: Parameters<typeof ingestRow>[1]) => say(table(ingestHeader, [ingestRow(label, step)]).split('\n')[2]!)
  }
}

async function ingestOurs(): Promise<IngestResult> {
  return withDatabase('ours_ingest', async (database, url) => {
    say('ingest, ours: starting node dist/src/server.js')
    const server = await startOurs({ databaseUrl: url, dataDir: join(workDir, 'ours-ingest'), logFile: join(workDir, 'ours-ingest.log'), logLevel: settings.logLevel })
    return withServer(server, async () => {
      const token = await ourToken(server.baseUrl, username)
      await createOurRooms(server.baseUrl, token, rooms)
      const counters = newCounters()
      const clients = await connectAll(server.wsUrl, token, rooms, counters)
      say(`ingest, ours: ${clients.length} sockets joined, ramping`)
      try {
        return await rampIngest({ ...ingestOptions(server, database, 'ours'), clients, counters })
      } finally {
        closeAll(clients)
      }
    })
  })
}

async function ingestPeer(): Promise<IngestResult> {
  return withDatabase('peer_ingest', async (database, url) => {
    say('ingest, peer: uWebSockets.js + pg pool of 10 + one INSERT per message')
    const userId = await setUpPeerDatabase(url, username, rooms)
    const secret = newSecret()
    const server = await startPeer('ingest', url, secret, join(workDir, 'peer-ingest.log'))
    return withServer(server, async () => {
      const counters = newCounters()
      const clients = await connectAll(server.wsUrl, peerToken(secret, userId, username), rooms, counters)
      say(`ingest, peer: ${clients.length} sockets joined, ramping`)
      try {
        return await rampIngest({ ...ingestOptions(server, database, 'peer'), clients, counters })
      } finally {
        closeAll(clients)
      }
    })
  })
}

const historyRoom = 'history'

function historyOptions(server: Running, database: string, token: string) {
  return {
    baseUrl: server.baseUrl,
    room: historyRoom,
    token,
    serverPid: server.process.pid,
    adminUrl,
    database,
    connections: settings.connections,
    seconds: settings.historySeconds,
    warmupSeconds: settings.warmupSeconds,
    rate: settings.historyRate
  }
}

async function historyOurs(): Promise<HistoryResult> {
  return withDatabase('ours_history', async (database, url) => {
    say('history, ours: starting node dist/src/server.js')
    const server = await startOurs({ databaseUrl: url, dataDir: join(workDir, 'ours-history'), logFile: join(workDir, 'ours-history.log'), logLevel: settings.logLevel })
    return withServer(server, async () => {
      const token = await ourToken(server.baseUrl, username)
      await createOurRooms(server.baseUrl, token, [historyRoom])
      const counters = newCounters()
      const client = await connect(server.wsUrl, token, historyRoom, counters)
      await sendMany(client, settings.historyMessages, 200, counters, historyBody)
      closeAll([client])
      say(`history, ours: ${settings.historyMessages} messages stored over the socket; autocannon ${settings.connections} connections, ${settings.historySeconds} s`)
      return runHistory(historyOptions(server, database, token))
    })
  })
}

async function historyPeer(): Promise<HistoryResult> {
  return withDatabase('peer_history', async (database, url) => {
    say('history, peer: node:http + pg pool of 10, one keyset query joined with users')
    const userId = await setUpPeerDatabase(url, username, [historyRoom])
    await fillPeerHistory(url, historyRoom, userId, settings.historyMessages)
    const secret = newSecret()
    const server = await startPeer('history', url, secret, join(workDir, 'peer-history.log'))
    return withServer(server, () => runHistory(historyOptions(server, database, peerToken(secret, userId, username))))
  })
}

const ackKeys = ['clientMsgId', 'createdAt', 'id', 'ref', 'room', 'seq', 'type']

function ackMatchesContract(ack: Record<string, unknown>): boolean {
  return Object.keys(ack).sort().join() === ackKeys.join() && typeof ack.id === 'string' && typeof ack.seq === 'number' &&
    typeof ack.createdAt === 'string' && !Number.isNaN(Date.parse(ack.createdAt))
}

function ratio(ours: number | null | undefined, peer: number | null | undefined): number | null {
  return ours === null || ours === undefined || peer === null || peer === undefined || peer === 0 || Number.isNaN(ours) || Number.isNaN(peer) ? null : ours / peer
}

function header(): void {
  const distAge = existsSync(serverEntry) ? statSync(serverEntry).mtime.toISOString() : 'missing'
  console.log('Independent ingest/history harness (bench-independent/, issue 15)')
  console.log(`date ${new Date().toISOString()}  node ${process.version}  cpus ${cpus().length}  load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
  console.log(`our server: node ${serverEntry} (built ${distAge}), NODE_ENV=production LOG_LEVEL=${settings.logLevel}, WS_RATE/WS_BURST lifted, every other setting default`)
  console.log(`postgres: fresh database per server on ${new URL(adminUrl).host}; the load generator runs in this process on the same machine (gen CPU%)`)
  if (runIngest) console.log(`ingest: ${settings.sockets} sockets, each in its own room; ${settings.stepSeconds} s per step; capacity = highest rate with ack p99 <= ${ackP99LimitMs} ms, every message acked once, none refused`)
  if (runHistoryScenario) console.log(`history: GET /rooms/${historyRoom}/messages?limit=50 on ${settings.historyMessages} messages, autocannon ${settings.connections} connections${settings.historyRate > 0 ? ` at ${settings.historyRate} req/s` : ''}, ${settings.historySeconds} s after ${settings.warmupSeconds} s warm-up`)
  console.log('')
}

async function main(): Promise<void> {
  if (args.build) {
    say('npm run build')
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: repoRoot, stdio: 'inherit' })
  }
  if (!existsSync(serverEntry)) throw new Error(`${serverEntry} is missing: run \`npm run build\` first (or pass --build)`)
  header()
  const ingest: { ours?: IngestResult; peer?: IngestResult } = {}
  const history: { ours?: HistoryResult; peer?: HistoryResult } = {}
  if (runIngest) {
    ingest.ours = await ingestOurs()
    ingest.peer = await ingestPeer()
  }
  if (runHistoryScenario) {
    history.ours = await historyOurs()
    history.peer = await historyPeer()
  }

  console.log('')
  if (ingest.ours !== undefined && ingest.peer !== undefined) {
    for (const [name, r] of [['ours', ingest.ours], ['peer', ingest.peer]] as const) {
      if (r.firstAck !== undefined && !ackMatchesContract(r.firstAck)) console.log(`shape check, ${name}: first ack ${JSON.stringify(r.firstAck)} (API.md: ${ackKeys.join(',')})`)
    }
    console.log('Ingest ramp (latency from send to ack as seen by the client; CPU over the step and its drain)')
    console.log(table(ingestHeader, [...ingest.ours.steps.map((s) => ingestRow('ours', s)), ...ingest.peer.steps.map((s) => ingestRow('peer', s))]))
    if ([...ingest.ours.steps, ...ingest.peer.steps].some((s) => s.generatorLimited)) {
      console.log('GEN-LIMITED: the load generator could not send at 95 % of the rate (see gen CPU%); a capacity reached there is a lower bound')
    }
    console.log('')
  }
  if (history.ours !== undefined && history.peer !== undefined) {
    console.log('History (server CPU from /proc of the server process; pg = its database\'s backends)')
    console.log(table(historyHeader, [historyRow('ours', history.ours), historyRow('peer', history.peer)]))
    for (const [name, r] of [['ours', history.ours], ['peer', history.peer]] as const) {
      if (r.sample.keys.join() !== messageKeys.join() || typeof r.sample.hasMore !== 'boolean') {
        console.log(`shape check, ${name}: message keys ${r.sample.keys.join(',')} hasMore ${String(r.sample.hasMore)} (API.md: ${messageKeys.join(',')}, boolean)`)
      }
    }
    console.log('')
  }

  const ratios: Ratio[] = []
  if (ingest.ours !== undefined && ingest.peer !== undefined) {
    const capacityRatio = ratio(ingest.ours.capacity, ingest.peer.capacity)
    const lowerBound = ingest.ours.capacityIsLowerBound
    ratios.push({
      name: 'ingest capacity, msgs/s',
      ours: capacityText(ingest.ours),
      peer: capacityText(ingest.peer),
      ratio: capacityRatio,
      ratioPrefix: lowerBound ? '≥' : '',
      target: '>= 5x',
      met: capacityRatio === null ? null : capacityRatio >= 5 ? true : lowerBound ? null : false
    })
    const p50Ratio = ratio(ingest.ours.ackP50At1000, ingest.peer.ackP50At1000)
    ratios.push({
      name: 'ack p50 at 1,000 msgs/s, ms',
      ours: fixed(ingest.ours.ackP50At1000, 2),
      peer: fixed(ingest.peer.ackP50At1000, 2),
      ratio: p50Ratio,
      ratioPrefix: '',
      target: '<= 1.5x',
      met: p50Ratio === null ? null : p50Ratio <= 1.5
    })
  }
  if (history.ours !== undefined && history.peer !== undefined) {
    const cpuRatio = ratio(history.ours.serverCpuPerRequestUs, history.peer.serverCpuPerRequestUs)
    ratios.push({
      name: 'history server CPU per request, µs',
      ours: fixed(history.ours.serverCpuPerRequestUs, 0),
      peer: fixed(history.peer.serverCpuPerRequestUs, 0),
      ratio: cpuRatio,
      ratioPrefix: '',
      target: '<= 0.7x',
      met: cpuRatio === null ? null : cpuRatio <= 0.7
    })
    const p99Ratio = ratio(history.ours.p99, history.peer.p99)
    ratios.push({
      name: 'history p99, ms',
      ours: fixed(history.ours.p99, 2),
      peer: fixed(history.peer.p99, 2),
      ratio: p99Ratio,
      ratioPrefix: '',
      target: '<= 1x',
      met: p99Ratio === null ? null : p99Ratio <= 1
    })
  }
  console.log('Targets (issue 15)')
  console.log(ratioTable(ratios))
  console.log(`\nload average at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')}; run took ${((Date.now() - started) / 1000).toFixed(0)} s`)
  if (args.json !== undefined) {
    writeFileSync(args.json, JSON.stringify({ date: new Date().toISOString(), settings, ingest, history, ratios }, null, 2))
    console.log(`figures written to ${args.json}`)
  }
}

// Exits explicitly: a socket or timer left behind by a failure must not keep the run alive.
main().then(
  async () => {
    await cleanup(args['keep-logs'])
    process.exit(0)
  },
  async (error: unknown) => {
    console.error(error instanceof Error ? error.message : error)
    await cleanup(true)
    process.exit(1)
  }
)
