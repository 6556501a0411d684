// The WebSocket hot path under load: `message` in, group commit, `ack` to the sender and `message`
// to every other socket in the room. `npm run bench:ws [-- --quick]`.
//
// 1. Fan-out: 100 sockets (one user each) all joined to ONE room; 2,000 messages/s in, sent round-robin
//    (20/s per socket) in small bursts every few ms, so ~198,000 frames/s go out. Ack latency (send →
//    ack at the sender) and delivery latency (send → `message` at the 99 others; the body carries
//    the sender's performance.now()) after a 2 s warm-up, over 10 s.
// 2. Ingest ramp: the same 100 sockets, each in its OWN room (no fan-out), at rising steady rates
//    until ack p99 exceeds 50 ms, the server refuses messages, or the generator cannot hold the
//    rate. With fan-out the single load-generator process (a Node `ws` client saturates near 500k
//    received frames/s) would be the limit long before the server.
// Every phase: server CPU per message (/proc/<pid>/stat), RSS, this process's CPU (flagged above
// 85% of one core: then it, not the server, may be the limit), errors by code; at the end, each
// room's lastSeq and history against what was acked. Results go to bench/results/ws-<date>.json.
//
// The server (`ws-server.ts`) runs with WS_RATE=WS_BURST=100000 and LOG_LEVEL=error; WRITE_MAX_BATCH,
// WRITE_MAX_DELAY_MS, WRITE_QUEUE_LIMIT (and WS_RATE/WS_BURST) pass through from this environment.
// With DATABASE_URL set (an admin URL, e.g. postgres://postgres@127.0.0.1:5432/postgres), a fresh
// database is created on that server for the run and dropped afterwards; otherwise the server
// uses an embedded database in a temporary DATA_DIR.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { createHistogram, monitorEventLoopDelay, performance, type RecordableHistogram } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { WS_FANOUT_ROOM, WS_SERVER_ENV, wsIngestRoom } from './fixture.js'
import { sampleProcess, type ProcessSample } from './process-stats.js'
import { eachLimited, signToken, startBenchServer, type BenchServer, type BenchUser } from './ws-server-process.js'

const here = dirname(fileURLToPath(import.meta.url))
const argv = process.argv.slice(2)
const QUICK = argv.includes('--quick')
function numberArg (name: string, fallback: number): number {
  const at = argv.indexOf(name)
  if (at < 0) return fallback
  const value = Number(argv[at + 1])
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} needs a positive number`)
  return value
}

interface Profile {
  readonly fanoutWarmupSeconds: number
  readonly fanoutSeconds: number
  readonly idleSeconds: number
  readonly rampWarmupSeconds: number
  readonly rampStepSeconds: number
  readonly rampRates: readonly number[]
  /** How long a phase waits for its last acks (and deliveries) before counting the rest as unacked. */
  readonly drainMs: number
}

const FULL: Profile = {
  fanoutWarmupSeconds: 2,
  fanoutSeconds: 10,
  idleSeconds: 2,
  rampWarmupSeconds: 1,
  rampStepSeconds: 5,
  rampRates: [2000, 4000, 6000, 8000, 10_000, 12_000, 14_000, 16_000, 18_000, 20_000, 22_000, 25_000, 30_000, 40_000, 50_000],
  drainMs: 3000
}
const QUICK_PROFILE: Profile = { fanoutWarmupSeconds: 1, fanoutSeconds: 3, idleSeconds: 1, rampWarmupSeconds: 1, rampStepSeconds: 3, rampRates: [2000, 8000, 20_000], drainMs: 2000 }
const base = QUICK ? QUICK_PROFILE : FULL
const profile: Profile = {
  ...base,
  fanoutSeconds: numberArg('--duration', base.fanoutSeconds),
  rampStepSeconds: numberArg('--step', base.rampStepSeconds)
}
const SOCKETS = Math.round(numberArg('--sockets', 100))
const FANOUT_RATE = Math.round(numberArg('--rate', 2000))
/** The ramp stops at the first step whose ack p99 is above this. */
const P99_LIMIT_MS = 50
/** Above this share of one core the generator may be what limits the figures. */
const GENERATOR_BOUND_PERCENT = 85
/** Above this share of one core used by other processes during a phase, the figures are flagged as disturbed. */
const NOISE_PERCENT = 20
/** The pacing timer: every TICK_MS it sends what the target rate says is due, round-robin over the sockets. */
const TICK_MS = 2
/** The whole run, server start to stop, stays under 3 minutes: the ramp takes no step that would not fit. */
const RUN_BUDGET_MS = 170_000
const STOP_RESERVE_MS = 20_000
/** Message bodies: the sender's performance.now() and phase, then filler to a typical chat length. */
const FILLER = 'a bench message padded to a typical chat length of about eighty bytes'
const runStarted = performance.now()

// ---------------------------------------------------------------------------------------------
// Measurement primitives

/** Latencies in microseconds (HDR histogram, 3 significant digits). */
function histogram (): RecordableHistogram { return createHistogram() }
function recordMs (h: RecordableHistogram, ms: number): void { h.record(Math.max(1, Math.round(ms * 1000))) }
function percentileMs (h: RecordableHistogram, p: number): number | null {
  return h.count === 0 ? null : round(h.percentile(p) / 1000, 2)
}
function maxMs (h: RecordableHistogram): number | null { return h.count === 0 ? null : round(h.max / 1000, 2) }
function round (value: number, digits: number): number { const f = 10 ** digits; return Math.round(value * f) / f }
function delay (ms: number): Promise<void> { return new Promise((resolve) => setTimeout(resolve, ms)) }
function bump (counts: Record<string, number>, key: string, by = 1): void { counts[key] = (counts[key] ?? 0) + by }

/** Busy CPU seconds of the whole machine (all cores), from /proc/stat: to see what else was running. */
function machineBusySeconds (): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? ''
  const [, user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).map(Number)
  return (user + nice + system + irq + softirq + steal) / 100
}

// ---------------------------------------------------------------------------------------------
// The server under test

let server: BenchServer | undefined

let cleanedUp: Promise<void> | undefined
function cleanup (): Promise<void> {
  cleanedUp ??= (async () => {
    for (const client of clients) client.ws.terminate()
    await server?.stop()
  })()
  return cleanedUp
}
let aborted = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (aborted) process.exit(130)
    aborted = true
    process.stderr.write(`\n${signal}: stopping the phase, then the server…\n`)
  })
}

// ---------------------------------------------------------------------------------------------
// Sockets

type Frame = Record<string, any> & { type: string }

/** A message's state, by its per-socket counter (which is also its `ref`): a phase index while waiting. */
const DONE = -1
const TIMED_OUT = -2

interface Client {
  readonly index: number
  readonly user: BenchUser
  readonly ws: WebSocket
  readonly ingestRoom: string
  /** By message counter: performance.now() at send, phase index (or DONE / TIMED_OUT), acked seq. */
  readonly sentAt: number[]
  readonly state: number[]
  readonly ackSeq: number[]
  readonly replies: Map<string, (frame: Frame) => void>
  open: boolean
  fanoutAcked: number
  fanoutReceived: number
  fanoutLastSeq: number
  fanoutOutOfOrder: number
}

interface RoomTally { acked: number, seen: Uint8Array, maxSeq: number, duplicateSeqs: number, badSeqs: number }

const clients: Client[] = []
const rooms = new Map<string, RoomTally>()
const unattributedErrors: Record<string, number> = {}
const anomalies = { duplicateAcks: 0, unknownAcks: 0, lateAcks: 0, ackMismatches: 0, unexpectedDeliveries: 0, unparsableFrames: 0 }
const closes: Array<{ socket: number, code: number, reason: string }> = []
let stopping = false

function tallyRoom (room: string, seq: unknown): void {
  let tally = rooms.get(room)
  if (tally === undefined) {
    tally = { acked: 0, seen: new Uint8Array(1 << 16), maxSeq: 0, duplicateSeqs: 0, badSeqs: 0 }
    rooms.set(room, tally)
  }
  tally.acked++
  if (typeof seq !== 'number' || !Number.isInteger(seq) || seq < 1) { tally.badSeqs++; return }
  if (seq >= tally.seen.length) {
    let size = tally.seen.length
    while (size <= seq) size *= 2
    const grown = new Uint8Array(size)
    grown.set(tally.seen)
    tally.seen = grown
  }
  if (tally.seen[seq] === 1) tally.duplicateSeqs++
  tally.seen[seq] = 1
  if (seq > tally.maxSeq) tally.maxSeq = seq
}

function onAck (client: Client, frame: Frame, now: number): void {
  const n = Number(frame.ref)
  const state = Number.isInteger(n) ? client.state[n] : undefined
  if (state === undefined) { anomalies.unknownAcks++; return }
  if (state === DONE) { anomalies.duplicateAcks++; return }
  client.state[n] = DONE
  client.ackSeq[n] = frame.seq
  if (frame.clientMsgId !== `c${client.index}-${n}`) anomalies.ackMismatches++
  tallyRoom(frame.room, frame.seq)
  if (frame.room === WS_FANOUT_ROOM) client.fanoutAcked++
  if (state === TIMED_OUT) { anomalies.lateAcks++; return }
  const phase = phases[state]
  if (phase === undefined) return
  phase.acked++
  recordMs(phase.ack, now - client.sentAt[n]!)
}

function onDelivery (client: Client, frame: Frame, now: number): void {
  if (frame.room !== WS_FANOUT_ROOM) { anomalies.unexpectedDeliveries++; return }
  const seq = frame.seq as number
  if (seq <= client.fanoutLastSeq) client.fanoutOutOfOrder++
  else client.fanoutLastSeq = seq
  client.fanoutReceived++
  const body = String(frame.body)
  const a = body.indexOf('|')
  const b = body.indexOf('|', a + 1)
  const phase = phases[Number(body.slice(a + 1, b))]
  if (phase === undefined) return
  phase.delivered++
  recordMs(phase.delivery, now - Number(body.slice(0, a)))
}

function onError (client: Client, frame: Frame): void {
  const code = typeof frame.code === 'string' ? frame.code : 'no code'
  const ref = frame.ref
  if (typeof ref === 'string') {
    const reply = client.replies.get(ref)
    if (reply !== undefined) { client.replies.delete(ref); reply(frame); return }
    const n = Number(ref)
    const state = Number.isInteger(n) ? client.state[n] : undefined
    if (state !== undefined && state >= 0) {
      client.state[n] = DONE
      const phase = phases[state]!
      phase.failed++
      bump(phase.errors, code)
      return
    }
  }
  bump(current?.errors ?? unattributedErrors, code)
}

async function openClient (index: number, user: BenchUser, port: number): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, ['chat.v1', `bearer.${signToken(user)}`], {
    perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: 10_000
  })
  const client: Client = {
    index, user, ws, ingestRoom: wsIngestRoom(index), sentAt: [], state: [], ackSeq: [], replies: new Map(),
    open: false, fanoutAcked: 0, fanoutReceived: 0, fanoutLastSeq: 0, fanoutOutOfOrder: 0
  }
  let welcomed: (frame: Frame) => void = () => {}
  const welcome = new Promise<Frame>((resolve) => { welcomed = resolve })
  ws.on('message', (data) => {
    const now = performance.now()
    let frame: Frame
    try {
      frame = JSON.parse((data as Buffer).toString()) as Frame
    } catch {
      anomalies.unparsableFrames++
      return
    }
    switch (frame.type) {
      case 'ack': onAck(client, frame, now); break
      case 'message': onDelivery(client, frame, now); break
      case 'error': onError(client, frame); break
      case 'welcome': welcomed(frame); break
      default: {
        const reply = typeof frame.ref === 'string' ? client.replies.get(frame.ref) : undefined
        if (reply !== undefined) { client.replies.delete(frame.ref as string); reply(frame) }
      }
    }
  })
  ws.on('close', (code, reason) => {
    client.open = false
    if (stopping) return
    closes.push({ socket: index, code, reason: reason.toString() })
    bump(current?.errors ?? unattributedErrors, `socket closed ${code}`)
  })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
    ws.once('unexpected-response', (_request, response) => reject(new Error(`socket ${index}: upgrade refused with HTTP ${response.statusCode ?? '?'}`)))
  })
  ws.on('error', (error) => { bump(current?.errors ?? unattributedErrors, `socket error: ${error.message}`) })
  client.open = true
  const first = await Promise.race([welcome, delay(10_000).then(() => null)])
  if (first === null) throw new Error(`socket ${index}: no welcome within 10 s`)
  return client
}

let joinRefs = 0
async function request (client: Client, frame: Record<string, unknown>): Promise<Frame> {
  const ref = `j${++joinRefs}`
  const reply = new Promise<Frame>((resolve, reject) => {
    const timer = setTimeout(() => { client.replies.delete(ref); reject(new Error(`socket ${client.index}: no reply to ${JSON.stringify(frame)} within 10 s`)) }, 10_000)
    client.replies.set(ref, (answer) => { clearTimeout(timer); resolve(answer) })
  })
  client.ws.send(JSON.stringify({ ...frame, ref }))
  return await reply
}

async function joinRoom (client: Client, room: string): Promise<void> {
  const reply = await request(client, { type: 'join', room })
  if (reply.type !== 'joined') throw new Error(`socket ${client.index}: join ${room} answered ${JSON.stringify(reply)}`)
}

// ---------------------------------------------------------------------------------------------
// Phases

type Mode = 'fanout' | 'ingest'

interface Phase {
  readonly index: number
  readonly name: string
  readonly mode: Mode
  readonly warmup: boolean
  readonly rate: number
  readonly seconds: number
  sent: number
  acked: number
  failed: number
  delivered: number
  unacked: number
  readonly errors: Record<string, number>
  readonly ack: RecordableHistogram
  readonly delivery: RecordableHistogram
  /** How late the oldest due message was at each tick: the generator keeping up with its schedule. */
  readonly pacing: RecordableHistogram
  rssPeakBytes: number
}

interface PhaseRow {
  phase: string
  mode: Mode
  warmup: boolean
  sockets: number
  rooms: number
  targetRate: number
  seconds: number
  sent: number
  sentPerSecond: number
  acked: number
  ackedPerSecond: number
  failed: number
  unacked: number
  errors: Record<string, number>
  ackP50Ms: number | null
  ackP99Ms: number | null
  ackMaxMs: number | null
  delivered: number
  deliveryP50Ms: number | null
  deliveryP99Ms: number | null
  deliveryMaxMs: number | null
  /** acks + deliveries per second: what the server wrote to sockets. */
  framesOutPerSecond: number
  serverCpuMsPerMessage: number | null
  serverCpuPercent: number
  serverRssMb: number
  serverRssPeakMb: number
  /** Postgres backends of the run's database (not Postgres's background processes); null for embedded (in the server process). */
  postgresCpuMsPerMessage: number | null
  postgresCpuPercent: number | null
  generatorCpuPercent: number
  generatorBound: boolean
  generatorLoopDelayP99Ms: number
  pacingLagP99Ms: number | null
  /** Machine busy CPU not accounted for by the server, the generator or the database's backends. */
  otherCpuPercent: number
  rateHeld: boolean
}

const phases: Phase[] = []
let current: Phase | undefined
const loopDelay = monitorEventLoopDelay({ resolution: 10 })
loopDelay.enable()

function newPhase (name: string, mode: Mode, rate: number, seconds: number, warmup: boolean): Phase {
  const phase: Phase = {
    index: phases.length, name, mode, warmup, rate, seconds, sent: 0, acked: 0, failed: 0, delivered: 0, unacked: 0,
    errors: {}, ack: histogram(), delivery: histogram(), pacing: histogram(), rssPeakBytes: 0
  }
  phases.push(phase)
  return phase
}

interface Snapshot {
  readonly at: number
  readonly server: ProcessSample
  readonly generator: NodeJS.CpuUsage
  readonly machine: number
  readonly postgres: Map<number, number>
}

async function snapshot (pid: number): Promise<Snapshot> {
  return { at: performance.now(), server: sampleProcess(pid), generator: process.cpuUsage(), machine: machineBusySeconds(), postgres: await server!.postgresBackends() }
}

function postgresDelta (before: Map<number, number>, after: Map<number, number>): number {
  let seconds = 0
  for (const [pid, cpu] of after) seconds += cpu - (before.get(pid) ?? 0)
  return seconds
}

function settled (phase: Phase, receivers: number): boolean {
  if (phase.acked + phase.failed < phase.sent) return false
  return phase.mode !== 'fanout' || phase.delivered >= phase.acked * receivers
}

async function runPhase (phase: Phase, pid: number): Promise<PhaseRow> {
  current = phase
  const senders = clients.filter((c) => c.open)
  if (senders.length === 0) throw new Error('no socket is open')
  const roomOf = phase.mode === 'fanout' ? () => WS_FANOUT_ROOM : (client: Client) => client.ingestRoom
  const total = Math.round(phase.rate * phase.seconds)
  const before = await snapshot(pid)
  phase.rssPeakBytes = before.server.rssBytes
  loopDelay.reset()
  let lastProgress = { at: before.at, sent: 0, acked: 0, delivered: 0, cpu: before.server.cpuSeconds, generator: before.generator }
  const progress = setInterval(() => {
    const now = performance.now()
    const server = sampleProcess(pid)
    phase.rssPeakBytes = Math.max(phase.rssPeakBytes, server.rssBytes)
    const seconds = (now - lastProgress.at) / 1000
    const generator = process.cpuUsage(lastProgress.generator)
    process.stderr.write(
      `  ${phase.name.padEnd(22)} ${((now - before.at) / 1000).toFixed(0).padStart(3)} s` +
      `  sent/s ${fmt((phase.sent - lastProgress.sent) / seconds)}  acked/s ${fmt((phase.acked - lastProgress.acked) / seconds)}` +
      (phase.mode === 'fanout' ? `  delivered/s ${fmt((phase.delivered - lastProgress.delivered) / seconds)}` : '') +
      `  in flight ${fmt(phase.sent - phase.acked - phase.failed)}  ack p99 ${percentileMs(phase.ack, 99) ?? '-'} ms` +
      `  server ${fmt((server.cpuSeconds - lastProgress.cpu) / seconds * 100)}% ${fmt(server.rssBytes / 2 ** 20)} MB` +
      `  generator ${fmt((generator.user + generator.system) / 1e4 / seconds)}%` +
      (Object.keys(phase.errors).length > 0 ? `  errors ${JSON.stringify(phase.errors)}` : '') + '\n')
    lastProgress = { at: now, sent: phase.sent, acked: phase.acked, delivered: phase.delivered, cpu: server.cpuSeconds, generator: process.cpuUsage() }
  }, 1000)

  const start = performance.now()
  let next = 0
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now()
      const due = Math.min(total, Math.floor((now - start) * phase.rate / 1000))
      if (due > phase.sent) recordMs(phase.pacing, now - (start + (phase.sent + 1) * 1000 / phase.rate))
      while (phase.sent < due && !aborted) {
        let client = senders[next++ % senders.length]!
        for (let tries = 0; !client.open && tries < senders.length; tries++) client = senders[next++ % senders.length]!
        if (!client.open) { aborted = true; break }
        const n = client.sentAt.length
        const at = performance.now()
        client.sentAt.push(at)
        client.state.push(phase.index)
        client.ackSeq.push(0)
        client.ws.send(`{"type":"message","room":"${roomOf(client)}","body":"${at.toFixed(3)}|${phase.index}|${FILLER}","clientMsgId":"c${client.index}-${n}","ref":"${n}"}`)
        phase.sent++
      }
      if (phase.sent >= total || aborted) { clearInterval(timer); resolve() }
    }, TICK_MS)
  })
  const sendEnd = await snapshot(pid)

  const receivers = senders.length - 1
  const drainStart = performance.now()
  while (!settled(phase, receivers) && performance.now() - drainStart < profile.drainMs) await delay(5)
  clearInterval(progress)
  // What is still unacked counts as failed, with the time it has waited as a lower bound on its latency.
  const now = performance.now()
  for (const client of clients) {
    for (let n = 0; n < client.state.length; n++) {
      if (client.state[n] === phase.index) {
        client.state[n] = TIMED_OUT
        phase.unacked++
        recordMs(phase.ack, now - client.sentAt[n]!)
      }
    }
  }
  const after = await snapshot(pid)
  current = undefined

  const sendSeconds = (sendEnd.at - before.at) / 1000
  const wholeSeconds = (after.at - before.at) / 1000
  const serverCpu = after.server.cpuSeconds - before.server.cpuSeconds
  const generatorCpu = process.cpuUsage(before.generator)
  const generatorSendCpu = (sendEnd.generator.user - before.generator.user + sendEnd.generator.system - before.generator.system) / 1e6
  const generatorCpuPercent = generatorSendCpu / sendSeconds * 100
  const postgresCpu = server?.postgres !== true ? null : postgresDelta(before.postgres, after.postgres)
  const machineCpu = after.machine - before.machine
  const otherCpu = machineCpu - serverCpu - (generatorCpu.user + generatorCpu.system) / 1e6 - (postgresCpu ?? 0)
  const pacingLagP99Ms = percentileMs(phase.pacing, 99)
  const sentPerSecond = phase.sent / sendSeconds
  return {
    phase: phase.name,
    mode: phase.mode,
    warmup: phase.warmup,
    sockets: senders.length,
    rooms: phase.mode === 'fanout' ? 1 : senders.length,
    targetRate: phase.rate,
    seconds: round(sendSeconds, 2),
    sent: phase.sent,
    sentPerSecond: Math.round(sentPerSecond),
    acked: phase.acked,
    ackedPerSecond: Math.round(phase.acked / sendSeconds),
    failed: phase.failed,
    unacked: phase.unacked,
    errors: phase.errors,
    ackP50Ms: percentileMs(phase.ack, 50),
    ackP99Ms: percentileMs(phase.ack, 99),
    ackMaxMs: maxMs(phase.ack),
    delivered: phase.delivered,
    deliveryP50Ms: percentileMs(phase.delivery, 50),
    deliveryP99Ms: percentileMs(phase.delivery, 99),
    deliveryMaxMs: maxMs(phase.delivery),
    framesOutPerSecond: Math.round((phase.acked + phase.delivered) / sendSeconds),
    serverCpuMsPerMessage: phase.acked === 0 ? null : round(serverCpu * 1000 / phase.acked, 4),
    serverCpuPercent: Math.round(serverCpu / wholeSeconds * 100),
    serverRssMb: Math.round(after.server.rssBytes / 2 ** 20),
    serverRssPeakMb: Math.round(Math.max(phase.rssPeakBytes, after.server.rssBytes) / 2 ** 20),
    postgresCpuMsPerMessage: postgresCpu === null || phase.acked === 0 ? null : round(postgresCpu * 1000 / phase.acked, 4),
    postgresCpuPercent: postgresCpu === null ? null : Math.round(postgresCpu / wholeSeconds * 100),
    generatorCpuPercent: Math.round(generatorCpuPercent),
    generatorBound: generatorCpuPercent > GENERATOR_BOUND_PERCENT,
    generatorLoopDelayP99Ms: round(loopDelay.percentile(99) / 1e6, 1),
    pacingLagP99Ms,
    otherCpuPercent: Math.round(otherCpu / wholeSeconds * 100),
    // Sent at least 98% of the target rate, and never far behind the schedule.
    rateHeld: !aborted && sentPerSecond >= phase.rate * 0.98 && (pacingLagP99Ms ?? 0) <= 25
  }
}

function fmt (value: number): string { return Math.round(value).toLocaleString('en-US') }

// ---------------------------------------------------------------------------------------------
// Checks: what the server stored against what it acked

interface Check { readonly name: string, readonly ok: boolean, readonly detail: string }

async function checkConsistency (port: number, token: string): Promise<Check[]> {
  const checks: Check[] = []
  const get = async (path: string): Promise<any> => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${token}` } })
    if (response.status !== 200) throw new Error(`GET ${path}: HTTP ${response.status} ${await response.text()}`)
    return await response.json()
  }
  const roomIds = [WS_FANOUT_ROOM, ...clients.map((c) => c.ingestRoom)]
  const lastSeqs = new Map<string, number>()
  const seqProblems: string[] = []
  const historyProblems: string[] = []
  await eachLimited(roomIds, 8, async (room) => {
    const { lastSeq } = await get(`/rooms/${encodeURIComponent(room)}`) as { lastSeq: number }
    lastSeqs.set(room, lastSeq)
    const tally = rooms.get(room)
    const acked = tally?.acked ?? 0
    if (lastSeq !== acked) seqProblems.push(`${room}: lastSeq ${lastSeq}, acked ${acked}`)
    if (tally !== undefined) {
      let missing = 0
      for (let seq = 1; seq <= lastSeq; seq++) if (tally.seen[seq] !== 1) missing++
      if (missing > 0 || tally.duplicateSeqs > 0 || tally.badSeqs > 0 || tally.maxSeq > lastSeq) {
        seqProblems.push(`${room}: acked seqs missing ${missing}, duplicated ${tally.duplicateSeqs}, invalid ${tally.badSeqs}, max ${tally.maxSeq} (lastSeq ${lastSeq})`)
      }
    }
    // The newest history page: contiguous seqs ending at lastSeq, each the message acked with that seq.
    const { messages } = await get(`/rooms/${encodeURIComponent(room)}/messages?limit=100`) as { messages: Array<{ seq: number, userId: string, clientMsgId: string | null }> }
    const expected = Math.min(100, lastSeq)
    if (messages.length !== expected) historyProblems.push(`${room}: newest page has ${messages.length} messages, expected ${expected}`)
    messages.forEach((message, i) => {
      const wantSeq = lastSeq - messages.length + 1 + i
      const match = /^c(\d+)-(\d+)$/.exec(message.clientMsgId ?? '')
      const owner = match === null ? undefined : clients[Number(match[1])]
      const ackSeq = owner?.ackSeq[Number(match?.[2])]
      if (message.seq !== wantSeq || owner === undefined || ackSeq !== message.seq || message.userId !== owner.user.id) {
        if (historyProblems.length < 20) historyProblems.push(`${room}: history seq ${message.seq} (expected ${wantSeq}) clientMsgId ${message.clientMsgId} userId ${message.userId}, acked as seq ${ackSeq ?? 'never'}`)
      }
    })
  })
  checks.push({ name: 'every room: lastSeq = messages acked, acked seqs exactly 1..lastSeq', ok: seqProblems.length === 0, detail: seqProblems.length === 0 ? `${roomIds.length} rooms, ${[...lastSeqs.values()].reduce((a, b) => a + b, 0)} messages` : seqProblems.slice(0, 10).join('; ') })
  checks.push({ name: 'history: newest page of every room is what was acked, in seq order', ok: historyProblems.length === 0, detail: historyProblems.length === 0 ? `${roomIds.length} rooms` : historyProblems.slice(0, 10).join('; ') })

  const fanoutLastSeq = lastSeqs.get(WS_FANOUT_ROOM) ?? 0
  const short: string[] = []
  let outOfOrder = 0
  for (const client of clients) {
    outOfOrder += client.fanoutOutOfOrder
    const expected = fanoutLastSeq - client.fanoutAcked
    if (client.fanoutReceived !== expected && short.length < 10) short.push(`socket ${client.index}: received ${client.fanoutReceived}, expected ${expected}`)
  }
  checks.push({ name: 'fan-out: every socket received every other socket\'s message once, in seq order', ok: short.length === 0 && outOfOrder === 0, detail: short.length === 0 && outOfOrder === 0 ? `${clients.length} sockets × ${fanoutLastSeq} seqs` : `${short.join('; ')}${outOfOrder > 0 ? `; out of order ${outOfOrder}` : ''}` })
  const bad = Object.entries(anomalies).filter(([key, count]) => count > 0 && key !== 'lateAcks')
  checks.push({ name: 'acks: none duplicated, unknown or for the wrong clientMsgId', ok: bad.length === 0, detail: JSON.stringify(anomalies) })
  checks.push({ name: 'sockets: none closed by the server during the run', ok: closes.length === 0, detail: closes.length === 0 ? 'none' : JSON.stringify(closes.slice(0, 10)) })
  return checks
}

// ---------------------------------------------------------------------------------------------
// Output

function markdownTable (headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`
  return [line(headers), `|${widths.map((w, i) => (i < 2 ? `-${'-'.repeat(w)}-` : `-${'-'.repeat(w)}:`)).join('|')}|`, ...rows.map(line)].join('\n')
}

function show (value: number | null, digits = 1): string {
  if (value === null) return '-'
  return value.toLocaleString('en-US', { maximumFractionDigits: digits })
}

function printRows (rows: readonly PhaseRow[]): void {
  const headers = ['phase', 'rooms × sockets', 'target/s', 'sent/s', 'acked', 'acked/s', 'ack p50', 'ack p99', 'ack max', 'deliv p50', 'deliv p99', 'frames out/s',
    'srv CPU ms/msg', 'srv CPU %', ...(server?.postgres === true ? ['pg CPU ms/msg'] : []), 'srv RSS MB', 'gen CPU %', 'other CPU %', 'errors', 'unacked']
  const cells = rows.map((r) => [
    `${r.phase}${r.warmup ? ' (warm-up)' : ''}`,
    `${r.rooms} × ${r.sockets}`,
    show(r.targetRate, 0), show(r.sentPerSecond, 0), show(r.acked, 0), show(r.ackedPerSecond, 0),
    show(r.ackP50Ms, 2), show(r.ackP99Ms, 2), show(r.ackMaxMs, 1),
    show(r.deliveryP50Ms, 2), show(r.deliveryP99Ms, 2),
    show(r.framesOutPerSecond, 0),
    r.serverCpuMsPerMessage === null ? '-' : r.serverCpuMsPerMessage.toFixed(4), show(r.serverCpuPercent, 0),
    ...(server?.postgres === true ? [r.postgresCpuMsPerMessage === null ? '-' : r.postgresCpuMsPerMessage.toFixed(4)] : []),
    `${r.serverRssMb} (${r.serverRssPeakMb})`,
    `${r.generatorCpuPercent}${r.generatorBound ? ' (!)' : ''}${r.rateHeld ? '' : ' (behind)'}`,
    show(r.otherCpuPercent, 0),
    Object.keys(r.errors).length === 0 ? '0' : Object.entries(r.errors).map(([code, count]) => `${code} ${count}`).join(', '),
    show(r.unacked, 0)
  ])
  console.log(markdownTable(headers, cells))
  console.log(`latencies in ms; RSS: at the end (peak); (!): the generator was above ${GENERATOR_BOUND_PERCENT}% of one core while sending, so it, not the server, may be the limit;` +
    ` (behind): it could not hold the target rate; other CPU: the machine's busy time not used by the server, the generator${server?.postgres === true ? ' or the database\'s Postgres backends' : ''}.`)
}

// ---------------------------------------------------------------------------------------------
// The run

async function main (): Promise<void> {
  const adminUrl = process.env.DATABASE_URL ?? ''
  const database = adminUrl === '' ? 'embedded' : 'postgres'
  process.stderr.write(`ws bench${QUICK ? ' (quick)' : ''}: ${database} database, ${SOCKETS} sockets, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`)
  server = await startBenchServer({ users: SOCKETS, adminUrl })
  const { pid, port, users } = server
  process.stderr.write(`  server pid ${pid} on 127.0.0.1:${port} (${users.length} users) after ${((performance.now() - runStarted) / 1000).toFixed(1)} s\n`)

  const opened = performance.now()
  const sockets: Client[] = new Array(SOCKETS)
  await eachLimited(users.slice(0, SOCKETS), 20, async (user, index) => { sockets[index] = await openClient(index, user, port) })
  clients.push(...sockets)
  await eachLimited(clients, 20, async (client) => {
    await joinRoom(client, WS_FANOUT_ROOM)
    await joinRoom(client, client.ingestRoom)
  })
  process.stderr.write(`  ${SOCKETS} sockets open and joined (fan-out room and own room) in ${((performance.now() - opened) / 1000).toFixed(1)} s\n`)
  await delay(500) // let the presence events of the joins go by
  // The server's cost with every socket joined and nothing sent: the floor under CPU per message.
  const idleBefore = await snapshot(pid)
  await delay(profile.idleSeconds * 1000)
  const idleAfter = await snapshot(pid)
  const idleSeconds = (idleAfter.at - idleBefore.at) / 1000
  const idle = {
    seconds: round(idleSeconds, 2),
    serverCpuPercent: Math.round((idleAfter.server.cpuSeconds - idleBefore.server.cpuSeconds) / idleSeconds * 100),
    serverRssMb: Math.round(idleAfter.server.rssBytes / 2 ** 20),
    postgresCpuPercent: !server.postgres ? null : Math.round(postgresDelta(idleBefore.postgres, idleAfter.postgres) / idleSeconds * 100),
    otherCpuPercent: Math.round((idleAfter.machine - idleBefore.machine - (idleAfter.server.cpuSeconds - idleBefore.server.cpuSeconds) -
      (idleAfter.generator.user - idleBefore.generator.user + idleAfter.generator.system - idleBefore.generator.system) / 1e6 -
      postgresDelta(idleBefore.postgres, idleAfter.postgres)) / idleSeconds * 100)
  }
  process.stderr.write(`  idle (${SOCKETS} sockets joined, no traffic): server ${idle.serverCpuPercent}% of a core, RSS ${idle.serverRssMb} MB; other processes ${idle.otherCpuPercent}%\n`)

  const rows: PhaseRow[] = []
  const run = async (phase: Phase): Promise<PhaseRow> => {
    const row = await runPhase(phase, pid)
    rows.push(row)
    if (aborted) throw new Error('interrupted')
    return row
  }

  process.stderr.write(`fan-out: ${FANOUT_RATE.toLocaleString('en-US')} msg/s into one room of ${SOCKETS} sockets (${(FANOUT_RATE * (SOCKETS - 1)).toLocaleString('en-US')} deliveries/s)\n`)
  await run(newPhase('fan-out warm-up', 'fanout', FANOUT_RATE, profile.fanoutWarmupSeconds, true))
  const fanout = await run(newPhase(`fan-out ${FANOUT_RATE / 1000}k/s`, 'fanout', FANOUT_RATE, profile.fanoutSeconds, false))

  process.stderr.write(`ingest ramp: ${SOCKETS} sockets, each in its own room (no fan-out), ${profile.rampStepSeconds} s per step until ack p99 > ${P99_LIMIT_MS} ms\n`)
  await run(newPhase('ingest warm-up', 'ingest', 1000, profile.rampWarmupSeconds, true))
  const steps: PhaseRow[] = []
  const failure = (step: PhaseRow): string | null => {
    const rate = step.targetRate.toLocaleString('en-US')
    const errors = step.failed + step.unacked
    if ((step.ackP99Ms ?? Infinity) > P99_LIMIT_MS) return `ack p99 ${step.ackP99Ms} ms > ${P99_LIMIT_MS} ms at ${rate}/s`
    if (errors > 0) return `${errors} messages refused or unacked at ${rate}/s (${JSON.stringify(step.errors)})`
    if (!step.rateHeld) return `the generator could not hold ${rate}/s (sent ${step.sentPerSecond.toLocaleString('en-US')}/s, pacing lag p99 ${step.pacingLagP99Ms} ms)`
    return null
  }
  const fits = (): boolean => performance.now() - runStarted + profile.rampStepSeconds * 1000 + profile.drainMs + STOP_RESERVE_MS <= RUN_BUDGET_MS
  let stopReason = `the last step (${profile.rampRates.at(-1)?.toLocaleString('en-US')}/s) passed`
  for (const rate of profile.rampRates) {
    if (!fits()) { stopReason = `time budget: no room for the ${rate.toLocaleString('en-US')}/s step within ${RUN_BUDGET_MS / 1000} s`; break }
    let step = await run(newPhase(`ingest ${rate / 1000}k/s`, 'ingest', rate, profile.rampStepSeconds, false))
    steps.push(step)
    let failed = failure(step)
    // A step that failed while other processes took the CPU is run once more before the ramp stops on it.
    if (failed !== null && step.otherCpuPercent > NOISE_PERCENT && fits()) {
      process.stderr.write(`  ${failed}, but other processes used ${step.otherCpuPercent}% of a core: running the step again\n`)
      step = await run(newPhase(`ingest ${rate / 1000}k/s again`, 'ingest', rate, profile.rampStepSeconds, false))
      steps.push(step)
      failed = failure(step)
    }
    if (failed !== null) { stopReason = failed; break }
  }
  const passing = steps.filter((s) => failure(s) === null)
  const best = passing.at(-1)

  // Stragglers: acks that came after their phase's drain still count for the rooms.
  const outstanding = (): number => clients.reduce((sum, c) => sum + c.state.filter((s) => s === TIMED_OUT).length, 0)
  for (let waited = 0; outstanding() > 0 && waited < 3000; waited += 100) await delay(100)
  const checks = await checkConsistency(port, signToken(users[0]!))

  console.log('')
  printRows(rows)
  console.log('')
  console.log(`Idle, ${SOCKETS} sockets joined and nothing sent: server ${idle.serverCpuPercent}% of a core, RSS ${idle.serverRssMb} MB${idle.postgresCpuPercent !== null ? `, Postgres backends ${idle.postgresCpuPercent}%` : ''}.`)
  const noisy = [{ phase: 'idle', otherCpuPercent: idle.otherCpuPercent }, ...rows].filter((r) => r.otherCpuPercent > NOISE_PERCENT)
  if (noisy.length > 0) {
    console.log(`WARNING: other processes on the machine used CPU during ${noisy.map((r) => `${r.phase} (${r.otherCpuPercent}%)`).join(', ')}: those figures are disturbed; run again on a quiet machine.`)
  }
  console.log(`Fan-out, ${FANOUT_RATE.toLocaleString('en-US')} msg/s into ONE room joined by ${fanout.sockets} sockets (${fanout.framesOutPerSecond.toLocaleString('en-US')} frames/s out), ${fanout.seconds} s after a ${profile.fanoutWarmupSeconds} s warm-up:`)
  console.log(`  ack p50 ${show(fanout.ackP50Ms, 2)} ms, p99 ${show(fanout.ackP99Ms, 2)} ms, max ${show(fanout.ackMaxMs, 1)} ms; delivery p50 ${show(fanout.deliveryP50Ms, 2)} ms, p99 ${show(fanout.deliveryP99Ms, 2)} ms;` +
    ` server ${fanout.serverCpuMsPerMessage?.toFixed(4) ?? '-'} ms CPU per message (${fanout.serverCpuPercent}% of a core), generator ${fanout.generatorCpuPercent}% of a core${fanout.generatorBound ? ' (generator-bound: figures are an upper bound on the server\'s latency)' : ''}`)
  console.log(`Ingest ramp (${SOCKETS} sockets, each joined to its OWN room: pure ingest, since fan-out to ${SOCKETS - 1} receivers saturates this single load-generator process long before the server):`)
  console.log(best === undefined
    ? `  no step kept ack p99 ≤ ${P99_LIMIT_MS} ms without errors (${stopReason})`
    : `  max ${best.targetRate.toLocaleString('en-US')} msg/s persisted (${best.ackedPerSecond.toLocaleString('en-US')} acked/s) with ack p99 ${best.ackP99Ms} ms ≤ ${P99_LIMIT_MS} ms; ` +
      `server ${best.serverCpuMsPerMessage?.toFixed(4) ?? '-'} ms CPU per message${best.postgresCpuMsPerMessage !== null ? ` + Postgres backends ${best.postgresCpuMsPerMessage.toFixed(4)} ms` : ''}` +
      `${best.generatorBound ? '; the generator was above 85% of a core at this step' : ''}`)
  console.log(`  stopped: ${stopReason}`)
  for (const check of checks) console.log(`${check.ok ? 'ok  ' : 'FAIL'} ${check.name}: ${check.detail}`)

  // Results go to the source tree's bench/results, also when run from the build in dist/bench.
  const file = join(here.endsWith(join('dist', 'bench')) ? join(here, '..', '..', 'bench') : here, 'results', `ws-${new Date().toISOString().slice(0, 19).replace(/:/g, '-')}.json`)
  mkdirSync(dirname(file), { recursive: true })
  const env = (name: string): string => process.env[name] ?? 'default'
  writeFileSync(file, `${JSON.stringify({
    date: new Date().toISOString(),
    database,
    quick: QUICK,
    node: process.version,
    cpus: cpus().length,
    loadAverageAtStart: loadavg(),
    sockets: SOCKETS,
    profile,
    idle,
    server: { WS_RATE: process.env.WS_RATE ?? WS_SERVER_ENV.WS_RATE, WS_BURST: process.env.WS_BURST ?? WS_SERVER_ENV.WS_BURST, WRITE_MAX_BATCH: env('WRITE_MAX_BATCH'), WRITE_MAX_DELAY_MS: env('WRITE_MAX_DELAY_MS'), WRITE_QUEUE_LIMIT: env('WRITE_QUEUE_LIMIT') },
    fanout: { rate: FANOUT_RATE, room: WS_FANOUT_ROOM, ackP50Ms: fanout.ackP50Ms, ackP99Ms: fanout.ackP99Ms, ackMaxMs: fanout.ackMaxMs, deliveryP50Ms: fanout.deliveryP50Ms, deliveryP99Ms: fanout.deliveryP99Ms, generatorBound: fanout.generatorBound },
    ingest: {
      note: 'each socket in its own room: pure ingest; fan-out to every socket would saturate the single load-generator process before the server',
      p99LimitMs: P99_LIMIT_MS,
      maxRateWithinLimit: best?.targetRate ?? null,
      ackedPerSecondAtMax: best?.ackedPerSecond ?? null,
      stopReason,
      steps: steps.map((s) => ({ rate: s.targetRate, ackP50Ms: s.ackP50Ms, ackP99Ms: s.ackP99Ms, generatorBound: s.generatorBound, rateHeld: s.rateHeld }))
    },
    rows,
    checks,
    anomalies,
    unattributedErrors,
    closes
  }, null, 2)}\n`)
  console.log(`written ${file}`)
  if (checks.some((c) => !c.ok)) process.exitCode = 1
}

try {
  await main()
} catch (error) {
  process.stderr.write(`ws bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exitCode = 1
} finally {
  stopping = true
  await cleanup()
  process.stderr.write(`server stopped; whole run ${((performance.now() - runStarted) / 1000).toFixed(1)} s\n`)
}
process.exit(process.exitCode ?? 0)
