// `npm run bench [-- --full] [-- --only fanout,ingest]`: every scenario against ours and the peers,
// each server started for it on 127.0.0.1 and stopped after, then a table, a JSON file and an SVG
// chart in bench/results/. With DATABASE_URL set (an admin URL), every storing server gets a fresh
// Postgres database, dropped after; otherwise an embedded one. The cluster scenario needs DATABASE_URL
// (its nodes share one database) and starts a redis-server of its own. See bench/README.md.
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { PROFILES, type Profile } from './profiles.js'
import { renderChart } from './report/chart.js'
import type { BenchRun, ResultRow, ScenarioName, WebSocketServerName } from './report/results.js'
import { renderTables } from './report/table.js'
import { checkTargets } from './report/targets.js'
import { cluster, clusterNotRunnable } from './scenarios/cluster.js'
import { connect } from './scenarios/connect.js'
import { fanout } from './scenarios/fanout.js'
import { ingest } from './scenarios/ingest.js'
import { memory } from './scenarios/memory.js'
import { reads } from './scenarios/reads.js'
import { rest } from './scenarios/rest.js'
import type { ScenarioContext, SocketScenario, StandaloneScenario } from './scenarios/scenario.js'
import { smallRooms } from './scenarios/small-rooms.js'
import { abandonRun, startBenchServer, type BenchServer } from './server-process.js'

/** Per server, memory first: it wants a server whose heap no other scenario has grown. */
const SOCKET_SCENARIOS: readonly SocketScenario[] = [memory, connect, fanout, smallRooms, ingest, reads]
const STANDALONE: readonly StandaloneScenario[] = [rest, cluster]
const SCENARIO_NAMES: readonly ScenarioName[] = [...SOCKET_SCENARIOS, ...STANDALONE].map((scenario) => scenario.name)
const SERVER_ORDER: readonly WebSocketServerName[] = ['chat', 'uws-raw', 'socketio', 'uws-pg-insert']

const here = dirname(fileURLToPath(import.meta.url))
// Results go to the source tree's bench/results, also when run from the build in dist/bench.
const DEFAULT_OUT = join(here.endsWith(join('dist', 'bench')) ? join(here, '..', '..', 'bench') : here, 'results')

export interface Options {
  readonly profile: Profile
  readonly only: readonly ScenarioName[] | null
  /** Where the JSON, SVG and Markdown go. */
  readonly out: string
  /** A Postgres admin URL (each storing server gets a fresh database on it), or '' for embedded. */
  readonly adminUrl: string
}

function parseArguments (argv: readonly string[]): Options {
  const value = (name: string): string | undefined => {
    const at = argv.indexOf(`--${name}`)
    return at < 0 ? undefined : argv[at + 1]
  }
  const profileName = argv.includes('--full') ? 'full' : value('profile') ?? 'quick'
  const profile = PROFILES[profileName as Profile['name']]
  if (profile === undefined) throw new Error(`unknown profile ${profileName}: quick, full or smoke`)
  const only = value('only')?.split(',').map((name) => name.trim()) ?? null
  for (const name of only ?? []) {
    if (!SCENARIO_NAMES.includes(name as ScenarioName)) throw new Error(`unknown scenario ${name}: ${SCENARIO_NAMES.join(', ')}`)
  }
  return { profile, only: only as ScenarioName[] | null, out: resolve(value('out') ?? DEFAULT_OUT), adminUrl: process.env.DATABASE_URL ?? '' }
}

function reporter (): Pick<ScenarioContext, 'progress' | 'log'> {
  const tty = process.stderr.isTTY
  let shown = false
  const clear = (): void => { if (tty && shown) { process.stderr.write('\r\x1b[K'); shown = false } }
  return {
    progress (line) {
      if (tty) {
        clear()
        process.stderr.write(line.slice(0, (process.stderr.columns ?? 120) - 1))
        shown = true
      } else {
        process.stderr.write(`${line}\n`)
      }
    },
    log (line) {
      clear()
      process.stderr.write(`${line}\n`)
    }
  }
}

/**
 * Runs the profile's scenarios: each WebSocket server is started once and measured by every
 * scenario that lists it, then stopped; REST starts its own. A scenario that fails is reported and
 * the others still run.
 */
export async function runBench (options: Options): Promise<{ run: BenchRun, files: string[], failed: boolean }> {
  const { profile, adminUrl } = options
  const database = adminUrl === '' ? 'embedded' : 'postgres'
  const { progress, log } = reporter()
  const rows: ResultRow[] = []
  const skipped: Array<BenchRun['skipped'][number]> = []
  let failed = false
  const started = performance.now()
  const selected = (name: ScenarioName): boolean => profile.scenarios.includes(name) && (options.only === null || options.only.includes(name))
  log(`bench: ${profile.name} profile, ${database} database, scenarios ${SCENARIO_NAMES.filter(selected).join(', ')}`)
  const context = (): ScenarioContext => ({
    profile,
    adminUrl,
    progress,
    log,
    record (row) {
      rows.push(row)
      log(`  ${summary(row)}`)
    }
  })
  const attempt = async (scenario: ScenarioName, server: WebSocketServerName | undefined, work: () => Promise<void>): Promise<void> => {
    try {
      await work()
    } catch (error) {
      failed = true
      const reason = `failed: ${error instanceof Error ? error.message : String(error)}`
      skipped.push({ scenario, server, reason })
      log(`  ${scenario}${server === undefined ? '' : ` on ${server}`} ${reason}`)
    }
  }

  for (const name of SERVER_ORDER) {
    const scenarios = SOCKET_SCENARIOS.filter((scenario) => selected(scenario.name) && scenario.servers.includes(name))
    if (scenarios.length === 0) continue
    log(`${name}: ${scenarios.map((scenario) => scenario.name).join(', ')}`)
    progress(`${name}: starting…`)
    let server: BenchServer | undefined
    await attempt(scenarios[0]!.name, name, async () => {
      server = await startBenchServer(name, {
        users: Math.max(...scenarios.map((scenario) => scenario.users(profile))),
        readRooms: scenarios.map((scenario) => scenario.readRooms?.(profile)).find((rooms) => rooms !== undefined),
        adminUrl
      })
    })
    if (server === undefined) continue
    try {
      for (const scenario of scenarios) await attempt(scenario.name, name, async () => { await scenario.run(context(), server!) })
    } finally {
      progress(`${name}: stopping…`)
      await server.stop()
    }
  }
  for (const scenario of STANDALONE.filter((candidate) => selected(candidate.name))) {
    log(`${scenario.name}:`)
    // Not a failure: the run was not given what the scenario needs, and says so.
    const missing = scenario.name === 'cluster' ? clusterNotRunnable(adminUrl) : null
    if (missing !== null) {
      skipped.push({ scenario: scenario.name, reason: missing })
      log(`  ${scenario.name} not run: ${missing}`)
      continue
    }
    await attempt(scenario.name, undefined, async () => { await scenario.run(context()) })
  }
  const date = new Date()
  const run: BenchRun = {
    date: date.toISOString(),
    profile: profile.name,
    database,
    machine: { cpus: cpus().length, node: process.version, cpuModel: cpus()[0]?.model ?? 'unknown' },
    durationSeconds: Math.round((performance.now() - started) / 1000),
    rows,
    targets: checkTargets({ rows, database }),
    skipped
  }
  mkdirSync(options.out, { recursive: true })
  const stem = join(options.out, date.toISOString().slice(0, 19).replace(/:/g, '-'))
  const files = [`${stem}.json`, `${stem}.svg`, `${stem}.md`]
  writeFileSync(files[0]!, `${JSON.stringify(run, null, 2)}\n`)
  writeFileSync(files[1]!, renderChart(run))
  writeFileSync(files[2]!, `${renderTables(run)}\n`)
  return { run, files, failed }
}

/** One line per measured step while the run goes on. */
function summary (row: ResultRow): string {
  const latency = row.delivery ?? row.ack ?? row.request
  return `${row.scenario.padEnd(11)} ${row.server.padEnd(22)} ${row.step.padEnd(30)}` +
    (latency === undefined ? '' : ` p50 ${latency.p50} ms, p99 ${latency.p99} ms`) +
    (row.cpuUsPerDelivery === undefined ? '' : `, ${row.cpuUsPerDelivery} µs CPU/delivery`) +
    (row.cpuUsPerDelivery !== undefined || row.cpuUsPerMessage === undefined ? '' : `, ${row.cpuUsPerMessage} µs CPU/${row.scenario === 'reads' ? 'read' : 'msg'}`) +
    (row.rssKbPerSocket === undefined ? '' : ` ${row.rssKbPerSocket} KB/socket`) +
    (row.upgradesPerSecond === undefined ? '' : `, ${row.upgradesPerSecond} upgrades/s`) +
    (row.requestsPerSecond === undefined ? '' : `, ${row.requestsPerSecond} req/s`) +
    (row.redisCpuUsPerMessage === undefined ? '' : `, Redis ${row.redisCpuUsPerMessage} µs CPU/msg`) +
    (row.sequence === undefined ? '' : `, lost/duplicated/out of order ${row.sequence.lost}/${row.sequence.duplicated}/${row.sequence.outOfOrder}`) +
    (row.outage === undefined ? '' : `, complete ${row.outage.repairMs ?? 'never'} ms after Redis was back`) +
    (row.failures > 0 ? `, ${row.failures} failed` : '') + (row.generatorBound ? ' [generator-bound]' : '')
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.once('SIGINT', () => {
    process.stderr.write('\ninterrupted: stopping the servers and dropping the run databases (Ctrl-C again to quit now)\n')
    void abandonRun().finally(() => process.exit(130))
  })
  const { run, files, failed } = await runBench(parseArguments(process.argv.slice(2)))
  process.stdout.write(`\n${renderTables(run)}\n\nbench took ${run.durationSeconds} s; written ${files.join(', ')}\n`)
  if (failed) process.exitCode = 1
}
