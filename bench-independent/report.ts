// Plain-text tables for the terminal.
import type { IngestResult, IngestStep } from './ingest.js'
import type { HistoryResult } from './history.js'

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

export function fixed(value: number | null | undefined, digits = 1): string {
  return value === null || value === undefined || Number.isNaN(value) ? '-' : value.toFixed(digits)
}

export const ingestHeader = [
  'server', 'rate/s', 'sent/s', 'acked/s', 'p50 ms', 'p99 ms', 'max ms', 'unacked', 'refused', 'dup',
  'closed', 'srv CPU%', 'srv µs/msg', 'pg CPU%', 'gen CPU%', 'verdict'
]

function verdict(step: IngestStep): string {
  if (step.generatorLimited) return 'GEN-LIMITED'
  if (step.overloaded) return 'overloaded'
  return step.pass ? 'pass' : 'fail'
}

export function ingestRow(server: string, step: IngestStep): string[] {
  const refused = Object.entries(step.refused).map(([code, n]) => `${n} ${code}`).join(',') || '0'
  return [
    server, String(step.rate), fixed(step.sentPerSec, 0), fixed(step.ackedPerSec, 0), fixed(step.p50, 2),
    fixed(step.p99, 2), fixed(step.max, 1), String(step.unacked), refused, String(step.duplicates),
    String(step.socketsClosed), fixed(step.serverCpuPct, 0), fixed(step.serverCpuPerMsgUs, 0),
    fixed(step.postgresCpuPct, 0), fixed(step.generatorCpuPct, 0), verdict(step)
  ]
}

export const historyHeader = ['server', 'requests', 'req/s', 'non2xx', 'errors', 'p50 ms', 'p99 ms', 'srv CPU%', 'srv µs/req', 'pg µs/req']

export function historyRow(server: string, r: HistoryResult): string[] {
  return [
    server, String(r.requests), fixed(r.requestsPerSec, 0), String(r.non2xx), String(r.errors), fixed(r.p50, 2),
    fixed(r.p99, 2), fixed(r.serverCpuPct, 0), fixed(r.serverCpuPerRequestUs, 0), fixed(r.postgresCpuPerRequestUs, 0)
  ]
}

export function capacityText(result: IngestResult | undefined): string {
  if (result === undefined) return '-'
  if (result.capacity === null) return `none (< ${result.steps[0]?.rate ?? '-'})`
  return `${result.capacityIsLowerBound ? '≥' : ''}${result.capacity}`
}

export interface Ratio {
  name: string
  ours: string
  peer: string
  ratio: number | null
  ratioPrefix: string
  target: string
  met: boolean | null
}

export function ratioTable(ratios: Ratio[]): string {
  return table(
    ['measure', 'ours', 'peer', 'ours/peer', 'target', 'met'],
    ratios.map((r) => [
      r.name, r.ours, r.peer, r.ratio === null ? '-' : `${r.ratioPrefix}${r.ratio.toFixed(2)}x`, r.target,
      r.met === null ? '?' : r.met ? 'yes' : 'NO'
    ])
  )
}
