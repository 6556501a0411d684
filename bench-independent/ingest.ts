// The ingest ramp: every socket in its own room, messages sent at a steady rate that rises step by
// step; per step the acks' rate and latency, what was lost, and the CPU of the server process and
// of the Postgres backends serving its database.
import { performance } from 'node:perf_hooks'
import { cpuUsage } from 'node:process'
import { backendCpu, backendCpuDelta } from './databases.js'
import { type Client, type Counters, drain, sendMessage, sleep } from './load.js'
import { processTreeCpuSeconds } from './processes.js'
import { percentile } from './stats.js'

export const ackP99LimitMs = 25

export interface IngestStep {
  rate: number
  seconds: number
  sentPerSec: number
  /** acks over the time from the first send to the last ack */
  ackedPerSec: number
  sent: number
  acked: number
  p50: number
  p99: number
  max: number
  /** sent, then neither acked nor refused within the drain timeout after the step */
  unacked: number
  refused: Record<string, number>
  duplicates: number
  socketsClosed: number
  serverCpuPct: number
  serverCpuPerMsgUs: number
  postgresCpuPct: number
  generatorCpuPct: number
  /** sending stopped early: more than a second's worth of messages was waiting for acks */
  overloaded: boolean
  /** the load generator could not send at 95 % of the rate: the step says nothing about the server */
  generatorLimited: boolean
  pass: boolean
}

export interface IngestOptions {
  clients: Client[]
  counters: Counters
  serverPid: number
  adminUrl: string
  database: string
  rates: number[]
  stepSeconds: number
  drainSeconds: number
  onStep: (step: IngestStep) => void
}

const body = 'ingest '.padEnd(100, 'x')

async function sendAtRate(options: IngestOptions, rate: number, ms: number): Promise<{ sent: number; elapsed: number; overloaded: boolean }> {
  const { clients, counters } = options
  const backlogLimit = Math.max(2000, rate)
  const start = performance.now()
  let sent = 0
  let next = 0
  for (;;) {
    const elapsed = Math.min(performance.now() - start, ms)
    const due = Math.floor((rate * elapsed) / 1000)
    while (sent < due) {
      sendMessage(clients[next]!, body, counters)
      next = (next + 1) % clients.length
      sent++
    }
    if (elapsed >= ms) return { sent, elapsed, overloaded: false }
    if (counters.pending.size > backlogLimit) return { sent, elapsed: performance.now() - start, overloaded: true }
    await sleep(1)
  }
}

async function step(options: IngestOptions, rate: number, seconds: number): Promise<IngestStep> {
  const { counters } = options
  counters.latencies = []
  counters.refused.clear()
  counters.duplicates = 0
  const closedBefore = [...counters.closes.values()].reduce((a, b) => a + b, 0)
  const pg0 = await backendCpu(options.adminUrl, options.database)
  const server0 = processTreeCpuSeconds(options.serverPid)
  const gen0 = cpuUsage()
  const wall0 = performance.now()

  const { sent, elapsed, overloaded } = await sendAtRate(options, rate, seconds * 1000)
  const unacked = await drain(counters, options.drainSeconds * 1000)

  // Until the last ack (or the drain timeout): what the server got through, even when overloaded.
  const wallSeconds = (performance.now() - wall0) / 1000
  const serverCpu = processTreeCpuSeconds(options.serverPid) - server0
  const gen = cpuUsage(gen0)
  const postgresCpu = backendCpuDelta(pg0, await backendCpu(options.adminUrl, options.database))
  for (const ref of counters.pending.keys()) counters.abandoned.add(ref)
  counters.pending.clear()

  const sorted = Float64Array.from(counters.latencies).sort()
  const acked = sorted.length
  const refusedTotal = [...counters.refused.values()].reduce((a, b) => a + b, 0)
  const socketsClosed = [...counters.closes.values()].reduce((a, b) => a + b, 0) - closedBefore
  const sentPerSec = sent / (elapsed / 1000)
  const generatorLimited = !overloaded && sentPerSec < rate * 0.95
  const p99 = percentile(sorted, 0.99)
  return {
    rate,
    seconds,
    sent,
    acked,
    sentPerSec,
    ackedPerSec: acked / wallSeconds,
    p50: percentile(sorted, 0.5),
    p99,
    max: sorted.length > 0 ? sorted[sorted.length - 1]! : NaN,
    unacked,
    refused: Object.fromEntries(counters.refused),
    duplicates: counters.duplicates,
    socketsClosed,
    serverCpuPct: (100 * serverCpu) / wallSeconds,
    serverCpuPerMsgUs: acked > 0 ? (serverCpu * 1e6) / acked : NaN,
    postgresCpuPct: (100 * postgresCpu) / wallSeconds,
    generatorCpuPct: (100 * (gen.user + gen.system)) / 1e6 / wallSeconds,
    overloaded,
    generatorLimited,
    pass: !overloaded && !generatorLimited && unacked === 0 && refusedTotal === 0 && counters.duplicates === 0 &&
      socketsClosed === 0 && acked === sent && p99 <= ackP99LimitMs
  }
}

export interface IngestResult {
  steps: IngestStep[]
  /** highest passing rate; null when none passed */
  capacity: number | null
  /** the ramp stopped on a pass (rates exhausted or generator-limited): capacity is a lower bound */
  capacityIsLowerBound: boolean
  ackP50At1000: number | null
  firstAck?: Record<string, unknown>
}

/** Warms up at 500/s, then runs the ramp until the server fails twice in a row or is overloaded. */
export async function rampIngest(options: IngestOptions): Promise<IngestResult> {
  await step(options, 500, 1)
  const steps: IngestStep[] = []
  let failuresInARow = 0
  for (const rate of options.rates) {
    const result = await step(options, rate, options.stepSeconds)
    steps.push(result)
    options.onStep(result)
    if (result.generatorLimited) break
    if (result.overloaded || result.unacked > 0 || result.socketsClosed > 0) break
    failuresInARow = result.pass ? 0 : failuresInARow + 1
    if (failuresInARow >= 2) break
    await sleep(300)
  }
  const passed = steps.filter((s) => s.pass).map((s) => s.rate)
  const capacity = passed.length > 0 ? Math.max(...passed) : null
  return {
    steps,
    capacity,
    capacityIsLowerBound: capacity !== null && !steps.some((s) => !s.pass && !s.generatorLimited && s.rate > capacity),
    ackP50At1000: steps.find((s) => s.rate === 1000)?.p50 ?? null,
    firstAck: options.counters.firstAck
  }
}
