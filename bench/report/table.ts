// The run as Markdown tables, one per scenario (the cluster's: one per part): printed at the end of
// `npm run bench`, written next to the JSON, and what bench/README.md quotes.
import { SERVER_LABELS, type BenchRun, type Percentiles, type ResultRow, type RowScenario, type SequenceCheck } from './results.js'

/** A header, the cell of a row, and whether the column is text (left-aligned) rather than a figure. */
type Column = readonly [header: string, value: (row: ResultRow, run: BenchRun) => string, text?: 'text']

const num = (value: number | null | undefined): string => value == null ? '-' : value.toLocaleString('en-US', { maximumSignificantDigits: 3 })
const whole = (value: number | null | undefined): string => value == null ? '-' : Math.round(value).toLocaleString('en-US')
const p50p99 = (latency: Percentiles | undefined): string => latency === undefined ? '-' : `${num(latency.p50)} / ${num(latency.p99)}`
const p50p90p99 = (latency: Percentiles | undefined): string => latency === undefined ? '-' : `${num(latency.p50)} / ${num(latency.p90)} / ${num(latency.p99)}`
const sequence = (check: SequenceCheck | undefined): string => check === undefined
  ? '-'
  : `${whole(check.lost)} / ${whole(check.duplicated)} / ${whole(check.outOfOrder)}${check.closed > 0 ? ` (${check.closed} closed)` : ''}`
const server = (row: ResultRow): string => SERVER_LABELS[row.server]
const flags = (row: ResultRow): string => [
  ...(row.failures > 0 ? [`${row.failures.toLocaleString('en-US')} failed`] : []),
  ...(row.generatorBound ? ['generator-bound'] : [])
].join(', ')

/** Server CPU per delivered frame against raw uWS's at the same rate in the same run. */
function versusRaw (row: ResultRow, run: BenchRun): string {
  const raw = run.rows.find((other) => other.scenario === row.scenario && other.server === 'uws-raw' && other.offered === row.offered)
  if (raw?.cpuUsPerDelivery === undefined || row.cpuUsPerDelivery === undefined) return '-'
  return `${(row.cpuUsPerDelivery / raw.cpuUsPerDelivery).toFixed(2)}x`
}

const delivery: readonly Column[] = [
  ['server', server],
  ['msgs/s in', (row) => whole(row.offered)],
  ['deliveries/s', (row) => whole(row.deliveriesPerSecond)],
  ['delivery p50 / p99 ms', (row) => p50p99(row.delivery)],
  ['frame bytes', (row) => whole(row.frameBytes)],
  ['server CPU µs / delivery', (row) => num(row.cpuUsPerDelivery)],
  ['vs raw uWS', versusRaw],
  ['server CPU %', (row) => whole(row.serverCpuPercent)],
  ['of it kernel %', (row) => whole(row.serverKernelShare)],
  ['generator CPU %', (row) => whole(row.generatorCpuPercent)],
  ['flags', flags]
]

/** CPU per delivered frame with several nodes against one node at the same load in the same run. */
function versusOneNode (row: ResultRow, run: BenchRun): string {
  const one = run.rows.find((other) => other.scenario === row.scenario && (other.nodes ?? 1) === 1 && other.offered === row.offered)
  if (one?.cpuUsPerDelivery === undefined || row.cpuUsPerDelivery === undefined) return '-'
  return `${(row.cpuUsPerDelivery / one.cpuUsPerDelivery).toFixed(2)}x`
}

const COLUMNS: Readonly<Record<RowScenario, readonly Column[]>> = {
  fanout: delivery,
  'small-rooms': delivery,
  ingest: [
    ['server', server],
    ['msgs/s in', (row) => whole(row.offered)],
    ['stored + acked /s', (row) => whole(row.messagesPerSecond)],
    ['ack p50 / p99 ms', (row) => p50p99(row.ack)],
    ['event-loop delay p50 / p99 ms', (row) => p50p99(row.eventLoopDelay)],
    ['server CPU µs / msg', (row) => num(row.cpuUsPerMessage)],
    ['Postgres CPU µs / msg', (row) => num(row.databaseCpuUsPerMessage)],
    ['server CPU %', (row) => whole(row.serverCpuPercent)],
    ['generator CPU %', (row) => whole(row.generatorCpuPercent)],
    ['flags', flags]
  ],
  reads: [
    ['server', server],
    ['reads/s in', (row) => whole(row.offered)],
    ['stored + answered /s', (row) => whole(row.messagesPerSecond)],
    ['read reply p50 / p99 ms', (row) => p50p99(row.ack)],
    ['receipt p50 / p99 ms', (row) => p50p99(row.delivery)],
    ['server CPU µs / read', (row) => num(row.cpuUsPerMessage)],
    ['Postgres CPU µs / read', (row) => num(row.databaseCpuUsPerMessage)],
    ['server CPU %', (row) => whole(row.serverCpuPercent)],
    ['generator CPU %', (row) => whole(row.generatorCpuPercent)],
    ['flags', flags]
  ],
  memory: [
    ['server', server],
    ['sockets', (row) => whole(row.offered), 'text'],
    ['RSS MB', (row) => num(row.serverRssMb)],
    ['RSS KB / socket', (row) => num(row.rssKbPerSocket)],
    ['flags', flags]
  ],
  connect: [
    ['server', server],
    ['sockets', (row) => row.step, 'text'],
    ['upgrades/s', (row) => whole(row.upgradesPerSecond)],
    ['connect p50 / p99 ms', (row) => p50p99(row.request)],
    ['server CPU µs / upgrade', (row) => num(row.cpuUsPerUpgrade)],
    ['generator CPU %', (row) => whole(row.generatorCpuPercent)],
    ['flags', flags]
  ],
  rest: [
    ['route', (row) => row.step, 'text'],
    ['server', server],
    ['req/s', (row) => whole(row.requestsPerSecond)],
    ['p50 / p99 ms', (row) => p50p99(row.request)],
    ['server CPU µs / req', (row) => num(row.cpuUsPerRequest)],
    ['Postgres CPU µs / req', (row) => num(row.databaseCpuUsPerRequest)],
    ['generator CPU %', (row) => whole(row.generatorCpuPercent)],
    ['flags', flags]
  ],
  'cluster-latency': [
    ['receivers', (row) => row.step, 'text'],
    ['receiver sockets', (row) => whole(row.sequence?.receivers)],
    ['msgs/s in', (row) => whole(row.offered)],
    ['deliveries/s', (row) => whole(row.deliveriesPerSecond)],
    ['delivery p50 / p90 / p99 ms', (row) => p50p90p99(row.delivery)],
    ['ack p50 / p99 ms', (row) => p50p99(row.ack)],
    ['lost / duplicated / out of order', (row) => sequence(row.sequence)],
    ['CPU % (all nodes)', (row) => whole(row.serverCpuPercent)],
    ['Redis CPU µs / msg', (row) => num(row.redisCpuUsPerMessage)],
    ['generator CPU %', (row) => whole(row.generatorCpuPercent)],
    ['flags', flags]
  ],
  'cluster-cpu': [
    ['server', server],
    ['nodes', (row) => whole(row.nodes ?? 1)],
    ['sockets', (row) => whole(row.sockets)],
    ['msgs/s in', (row) => whole(row.offered)],
    ['deliveries/s', (row) => whole(row.deliveriesPerSecond)],
    ['delivery p50 / p99 ms', (row) => p50p99(row.delivery)],
    ['server CPU µs / delivery (all nodes)', (row) => num(row.cpuUsPerDelivery)],
    ['vs 1 node', versusOneNode],
    ['server CPU % (all nodes)', (row) => whole(row.serverCpuPercent)],
    ['Postgres CPU µs / msg', (row) => num(row.databaseCpuUsPerMessage)],
    ['Redis CPU µs / msg', (row) => num(row.redisCpuUsPerMessage)],
    ['generator CPU %', (row) => whole(row.generatorCpuPercent)],
    ['flags', flags]
  ],
  'cluster-outage': [
    ['Redis down s', (row) => num(row.outage?.seconds)],
    ['msgs/s in', (row) => whole(row.offered)],
    ['sent / acked during the outage', (row) => row.outage === undefined ? '-' : `${whole(row.outage.sentDuring)} / ${whole(row.outage.ackedDuring)}`],
    ['ack p50 / p99 ms: all / during the outage', (row) => `${p50p99(row.ack)}; ${p50p99(row.outage?.ackDuring)}`],
    ['cross-node deliveries of them', (row) => whole(row.outage?.crossNodeDue)],
    ['delivered before / after Redis was back', (row) => row.outage === undefined ? '-' : `${whole(row.outage.deliveredDuring)} / ${whole(row.outage.deliveredAfter)}`],
    ['their delivery p50 / p99 ms', (row) => p50p99(row.outage?.crossNodeDelivery)],
    ['after, per remote receiver: mean / max', (row) => row.outage === undefined ? '-' : `${num(row.outage.perReceiverAfter.mean)} / ${whole(row.outage.perReceiverAfter.max)}`],
    ['Redis back → all complete ms', (row) => row.outage === undefined ? '-' : row.outage.repairMs === null ? 'never' : whole(row.outage.repairMs)],
    ['lost / duplicated / out of order', (row) => sequence(row.sequence)],
    ['flags', flags]
  ]
}

const TITLES: Readonly<Record<RowScenario, string>> = {
  fanout: 'Fan-out: one room, every socket in it',
  'small-rooms': 'Many small rooms: rooms of 10',
  ingest: 'Ingest with persistence: each socket in its own room',
  reads: 'Read positions: each socket reads another user\'s room, one seq per read; the author gets the receipt',
  memory: 'Idle memory: authenticated sockets, each joined to a room of 10',
  connect: 'Connect storm: upgrades with a JWT',
  rest: 'REST with autocannon',
  'cluster-latency': 'Cluster: same-node vs cross-node delivery, senders on node 1, rooms of 10',
  'cluster-cpu': 'Cluster: server CPU per delivered frame, several nodes vs one, one room',
  'cluster-outage': 'Cluster: Redis stopped and started again, senders on every node, rooms of 10'
}

function table (columns: readonly Column[], rows: readonly ResultRow[], run: BenchRun): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`
  return [
    line(columns.map(([header]) => header)),
    line(columns.map(([header, , kind]) => kind === 'text' || header === 'server' || header === 'flags' ? '---' : '---:')),
    ...rows.map((row) => line(columns.map(([, value]) => value(row, run))))
  ].join('\n')
}

export function renderTables (run: BenchRun): string {
  const scenarios = [...new Set(run.rows.map((row) => row.scenario))]
  const sections = scenarios.map((scenario) => {
    const rows = run.rows.filter((row) => row.scenario === scenario)
    const notes = rows.flatMap((row) => row.notes.map((note) => `- ${SERVER_LABELS[row.server]}, ${row.step}: ${note}`))
    return [`### ${TITLES[scenario]}`, '', table(COLUMNS[scenario], rows, run), ...(notes.length > 0 ? ['', ...notes] : [])].join('\n')
  })
  const targets = run.targets.map((check) => `| ${check.target} | ${check.measured} | ${check.met === null ? 'not checked' : check.met ? 'met' : '**missed**'} |`)
  return [
    ...sections,
    ...(run.skipped.length > 0 ? [run.skipped.map((skip) => `- not run: ${skip.scenario}${skip.server === undefined ? '' : ` on ${SERVER_LABELS[skip.server]}`}: ${skip.reason}`).join('\n')] : []),
    [`### Targets (${run.profile} profile, ${run.database} database)`, '', '| target | measured | |', '| --- | --- | --- |', ...targets].join('\n')
  ].join('\n\n')
}
