// What a step measures besides latency, all read from /proc so the figures do not depend on the
// load generator: the server's CPU and RSS, the run database's backends, this process's own CPU
// (the generator: near a full core, it may be what limits the step) and the rest of the machine.
import { readFileSync } from 'node:fs'
import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks'
import type { Percentiles } from '../report/results.js'
import { sampleProcess } from '../process-stats.js'
import type { BenchServer } from '../server-process.js'

/** Above this share of one core, the generator may be what limits a step. */
const GENERATOR_BOUND_PERCENT = 85
/** Above this share of one core used by other processes, a step is flagged as disturbed. */
const NOISE_PERCENT = 25
/**
 * /proc counts CPU in 10 ms ticks: under ten of them a per-item figure is off by up to a tenth
 * (under one it can read 0), so such a step says so.
 */
const RESOLVED_CPU_SECONDS = 0.1

/** Latencies in microseconds (HDR histogram, 3 significant digits). */
export function latencyHistogram (): RecordableHistogram { return createHistogram() }
export function recordMs (histogram: RecordableHistogram, ms: number): void { histogram.record(Math.max(1, Math.round(ms * 1000))) }

export function round (value: number, digits = 3): number {
  if (value === 0 || !Number.isFinite(value)) return value
  // Significant digits, not decimals: figures range from 0.3 µs to 90,000 req/s.
  const scale = 10 ** Math.max(0, digits - 1 - Math.floor(Math.log10(Math.abs(value))))
  return Math.round(value * scale) / scale
}

export function percentiles (histogram: RecordableHistogram): Percentiles {
  if (histogram.count === 0) return { p50: null, p90: null, p99: null, max: null }
  const ms = (us: number): number => round(us / 1000)
  return { p50: ms(histogram.percentile(50)), p90: ms(histogram.percentile(90)), p99: ms(histogram.percentile(99)), max: ms(histogram.max) }
}

/** Busy CPU seconds of the whole machine (all cores), from /proc/stat. */
function machineBusySeconds (): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? ''
  const [, user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).map(Number)
  return (user + nice + system + irq + softirq + steal) / 100
}

interface Snapshot {
  readonly at: number
  readonly serverCpu: number
  readonly serverSystem: number
  readonly rssBytes: number
  readonly redisCpu: number
  readonly generator: NodeJS.CpuUsage
  readonly machine: number
  readonly postgres: Map<number, number>
}

/** What a step measures: a server's process, or all of them for a server made of several (a cluster's nodes). */
export interface Measured {
  readonly pid: number | readonly number[]
  /** A Redis the server uses (a cluster's): its CPU is reported apart, and not as other processes'. */
  readonly redisPid?: number | undefined
  readonly postgresBackends?: BenchServer['postgresBackends']
}

export interface Usage {
  readonly seconds: number
  /** Summed over the server's processes. */
  readonly serverCpuSeconds: number
  /** In % of one core, summed over the server's processes (3 nodes at 40% each: 120). */
  readonly serverCpuPercent: number
  /** Share of the server's CPU spent in the kernel, in %. */
  readonly serverKernelShare: number
  readonly serverRssMb: number
  /** CPU of the run database's backends (real Postgres only; embedded runs inside the server). */
  readonly databaseCpuSeconds: number
  /** CPU of the server's Redis, when it has one. */
  readonly redisCpuSeconds: number
  readonly generatorCpuPercent: number
  readonly generatorBound: boolean
  readonly notes: string[]
}

async function snapshot (server: Measured): Promise<Snapshot> {
  let serverCpu = 0
  let serverSystem = 0
  let rssBytes = 0
  for (const pid of typeof server.pid === 'number' ? [server.pid] : server.pid) {
    const sample = sampleProcess(pid)
    serverCpu += sample.cpuSeconds
    serverSystem += sample.systemSeconds
    rssBytes += sample.rssBytes
  }
  let redisCpu = 0
  if (server.redisPid !== undefined) {
    try { redisCpu = sampleProcess(server.redisPid).cpuSeconds } catch { /* stopped: nothing more to count */ }
  }
  return {
    at: performance.now(),
    serverCpu,
    serverSystem,
    rssBytes,
    redisCpu,
    generator: process.cpuUsage(),
    machine: machineBusySeconds(),
    postgres: await server.postgresBackends?.() ?? new Map<number, number>()
  }
}

/** Starts measuring `server`; `end()` gives the usage since. */
export async function startUsage (server: Measured): Promise<{ end (): Promise<Usage> }> {
  const before = await snapshot(server)
  return {
    async end () {
      const after = await snapshot(server)
      const seconds = (after.at - before.at) / 1000
      const serverCpuSeconds = after.serverCpu - before.serverCpu
      const redisCpuSeconds = Math.max(0, after.redisCpu - before.redisCpu)
      let databaseCpuSeconds = 0
      for (const [pid, cpu] of after.postgres) databaseCpuSeconds += cpu - (before.postgres.get(pid) ?? 0)
      const generator = process.cpuUsage(before.generator)
      const generatorSeconds = (generator.user + generator.system) / 1e6
      const generatorCpuPercent = round(100 * generatorSeconds / seconds)
      const other = (after.machine - before.machine) - serverCpuSeconds - databaseCpuSeconds - redisCpuSeconds - generatorSeconds
      const otherPercent = 100 * other / seconds
      const notes: string[] = []
      const generatorBound = generatorCpuPercent >= GENERATOR_BOUND_PERCENT
      if (generatorBound) notes.push(`generator at ${Math.round(generatorCpuPercent)}% of a core: it may be the limit`)
      if (otherPercent > NOISE_PERCENT) notes.push(`other processes used ${Math.round(otherPercent)}% of a core`)
      if (serverCpuSeconds < RESOLVED_CPU_SECONDS) notes.push(`server CPU ${Math.round(serverCpuSeconds * 1000)} ms: too few 10 ms ticks for an exact per-item figure`)
      if (after.postgres.size > 0 && databaseCpuSeconds < RESOLVED_CPU_SECONDS) notes.push(`Postgres CPU ${Math.round(databaseCpuSeconds * 1000)} ms: too few 10 ms ticks for an exact per-item figure`)
      if (server.redisPid !== undefined && redisCpuSeconds < RESOLVED_CPU_SECONDS) notes.push(`Redis CPU ${Math.round(redisCpuSeconds * 1000)} ms: too few 10 ms ticks for an exact per-item figure`)
      return {
        seconds,
        serverCpuSeconds,
        serverCpuPercent: round(100 * serverCpuSeconds / seconds),
        serverKernelShare: serverCpuSeconds === 0 ? 0 : Math.round(100 * (after.serverSystem - before.serverSystem) / serverCpuSeconds),
        serverRssMb: round(after.rssBytes / 2 ** 20),
        databaseCpuSeconds,
        redisCpuSeconds,
        generatorCpuPercent,
        generatorBound,
        notes
      }
    }
  }
}

export function delay (ms: number): Promise<void> { return new Promise((resolve) => setTimeout(resolve, ms)) }
