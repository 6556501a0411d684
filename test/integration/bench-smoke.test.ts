import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import t, { type Test } from 'tap'
import { PROFILES } from '../../bench/profiles.js'
import { SERVER_LABELS, type BenchRun, type Percentiles, type ResultRow } from '../../bench/report/results.js'
import { runBench } from '../../bench/run.js'

// `npm run bench` end to end at its smallest (the `smoke` profile: fan-out in one room of 20,
// ingest through 10 sockets (ours and the hand-written uWS + INSERT peer) and reads by 10 sockets,
// one 2 s step each): every server starts, is measured and stops, and
// the figures are present and sane. Nothing here is timed; the figures are not judged, only checked
// to be the figures of the traffic that was sent.

const sane = (t: Test, latency: Percentiles | undefined, what: string): void => {
  t.ok(latency !== undefined && latency.p50 !== null && latency.p99 !== null && latency.max !== null, `${what}: percentiles present`)
  if (latency?.p50 == null || latency.p99 == null || latency.max == null || latency.p90 == null) return
  // Copies: tap writes its own fields into a diagnostic object.
  t.ok(latency.p50 > 0 && latency.p50 <= latency.p90 && latency.p90 <= latency.p99 && latency.p99 <= latency.max, `${what}: 0 < p50 ≤ p90 ≤ p99 ≤ max`, { ...latency })
  t.ok(latency.max < 60_000, `${what}: under a minute`, { ...latency })
}

const positive = (t: Test, value: number | undefined, what: string): void => {
  t.ok(value !== undefined && Number.isFinite(value) && value > 0, `${what} is a positive number`, { value })
}

function checkRun (t: Test, run: BenchRun, database: BenchRun['database']): void {
  t.equal(run.profile, 'smoke')
  t.equal(run.database, database)
  t.same(run.skipped, [], 'every scenario ran on every server')
  const { fanout, ingest, reads } = PROFILES.smoke
  for (const server of ['chat', 'uws-raw', 'socketio'] as const) {
    const row = run.rows.find((r) => r.scenario === 'fanout' && r.server === server) as ResultRow
    t.ok(row, `fan-out measured on ${server}`)
    if (row === undefined) continue
    t.equal(row.failures, 0, `${server}: every message acked and delivered to the ${fanout.sockets - 1} others`, { notes: row.notes })
    t.equal(row.offered, fanout.rates[0])
    sane(t, row.delivery, `${server} delivery`)
    sane(t, row.ack, `${server} ack`)
    positive(t, row.cpuUsPerDelivery, `${server} CPU per delivery`)
    positive(t, row.messagesPerSecond, `${server} messages/s`)
    // Each acked message reached every other socket: deliveries/s is messages/s times the receivers
    // (both rounded to 3 significant digits).
    const expected = row.messagesPerSecond! * (fanout.sockets - 1)
    t.ok(Math.abs(row.deliveriesPerSecond! - expected) <= expected * 0.01, `${server}: deliveries match messages × receivers`,
      { deliveries: row.deliveriesPerSecond, messages: row.messagesPerSecond })
    t.ok(row.generatorCpuPercent >= 0, `${server}: generator CPU reported`)
    positive(t, row.frameBytes, `${server} delivered frame size`)
  }
  // CPU per frame compares like with like: raw uWS publishes our frame with the same user in it (the
  // message id's digits may differ).
  const frameBytes = (server: ResultRow['server']): number | undefined => run.rows.find((r) => r.scenario === 'fanout' && r.server === server)?.frameBytes
  const ourFrame = frameBytes('chat')
  const rawFrame = frameBytes('uws-raw')
  t.ok(ourFrame !== undefined && rawFrame !== undefined && Math.abs(ourFrame - rawFrame) <= ourFrame * 0.05, 'raw uWS frames are as large as ours (within 5%)', { ourFrame, rawFrame })
  for (const server of ['chat', 'uws-pg-insert'] as const) {
    const row = run.rows.find((r) => r.scenario === 'ingest' && r.server === server) as ResultRow
    t.ok(row, `ingest measured on ${server}`)
    if (row === undefined) continue
    t.equal(row.failures, 0, `${server}: every message stored and acked`, { notes: row.notes })
    t.equal(row.offered, ingest.rates[0])
    sane(t, row.ack, `${server} ingest ack`)
    positive(t, row.cpuUsPerMessage, `${server} CPU per stored message`)
    t.equal(row.delivery, undefined, `${server}: no deliveries in ingest`)
    if (database === 'postgres') positive(t, row.databaseCpuUsPerMessage, `${server} Postgres CPU per message`)
    if (server === 'chat') {
      t.ok(row.eventLoopDelay?.p99 != null && row.eventLoopDelay.max != null && row.eventLoopDelay.p99 >= 0 &&
        row.eventLoopDelay.p99 <= row.eventLoopDelay.max && row.eventLoopDelay.max < 60_000, 'our event-loop delay measured over the step', { ...row.eventLoopDelay })
    } else {
      t.equal(row.eventLoopDelay, undefined, 'the peer\'s event loop is not measured')
    }
  }
  const read = run.rows.find((r) => r.scenario === 'reads' && r.server === 'chat')
  t.ok(read, 'reads measured on chat')
  t.same(run.rows.filter((r) => r.scenario === 'reads').map((r) => r.server), ['chat'], 'reads run on ours only')
  if (read !== undefined) {
    // Every read answered at the seq it asked for (the rooms held enough messages), and reached the
    // room's author in a receipt (its own or a later read's).
    t.equal(read.failures, 0, 'every read moved its position, was answered and reached the author', { notes: read.notes })
    t.equal(read.offered, reads.rates[0])
    sane(t, read.ack, 'read reply')
    sane(t, read.delivery, 'receipt')
    positive(t, read.messagesPerSecond, 'reads answered/s')
    positive(t, read.cpuUsPerMessage, 'CPU per read')
    // Reads stored in one batch may share one receipt, never the reverse.
    t.ok(read.deliveriesPerSecond! > 0 && read.deliveriesPerSecond! <= read.messagesPerSecond!, 'receipts/s at most reads/s',
      { receipts: read.deliveriesPerSecond, reads: read.messagesPerSecond })
    t.equal(read.cpuUsPerDelivery, undefined, 'no CPU per receipt: a read\'s receipt is part of its cost')
    if (database === 'postgres') positive(t, read.databaseCpuUsPerMessage, 'Postgres CPU per read')
  }
  t.equal(run.targets.length, 10, 'every target is reported')
  for (const target of run.targets) t.ok(target.measured.length > 0, `target "${target.target}" says what was measured`)
  // Smoke measures ingest at one rate on both servers: what the ingest targets need is there.
  const measured = (prefix: string): boolean => run.targets.some((target) => target.target.startsWith(prefix) && target.measured !== 'not measured')
  t.ok(measured('ingest capacity'), 'ingest capacity compared with the hand-written peer')
  t.ok(measured('event-loop delay'), 'event-loop delay judged')
}

async function smoke (t: Test, adminUrl: string, database: BenchRun['database']): Promise<void> {
  const out = mkdtempSync(join(tmpdir(), 'chat-bench-smoke-'))
  t.teardown(() => { rmSync(out, { recursive: true, force: true }) })
  const { run, files, failed } = await runBench({ profile: PROFILES.smoke, only: null, out, adminUrl })
  t.notOk(failed, 'no scenario failed')
  checkRun(t, run, database)
  const [json, svg, markdown] = files.map((file) => readFileSync(file, 'utf8'))
  t.ok(files.every((file) => existsSync(file)), 'JSON, SVG and Markdown written')
  t.same(JSON.parse(json!), run, 'the JSON file is the run')
  t.match(svg, /^(<\?xml[^>]*>\s*)?<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"[\s\S]*<\/svg>\s*$/, 'the chart is an SVG document')
  t.match(svg, SERVER_LABELS.socketio, 'the chart names the servers')
  t.match(markdown, /### Fan-out[\s\S]*raw uWS pub\/sub[\s\S]*### Ingest[\s\S]*### Read positions[\s\S]*server CPU µs \/ read[\s\S]*### Targets/, 'the tables cover the scenarios and targets')
}

t.test('npm run bench, smoke profile, embedded database', async (t) => {
  await smoke(t, '', 'embedded')
})

const adminUrl = process.env.TEST_DATABASE_URL ?? ''
t.test('npm run bench, smoke profile, Postgres', { skip: adminUrl === '' ? 'postgres: TEST_DATABASE_URL is not set' : false }, async (t) => {
  const databases = async (): Promise<string[]> => {
    const client = new pg.Client({ connectionString: adminUrl })
    await client.connect()
    try {
      return (await client.query<{ datname: string }>("select datname from pg_database where datname like 'chat_bench_%'")).rows.map((r) => r.datname)
    } finally {
      await client.end()
    }
  }
  const before = await databases()
  await smoke(t, adminUrl, 'postgres')
  t.same((await databases()).filter((name) => !before.includes(name)), [], 'the run dropped the databases it created')
})
