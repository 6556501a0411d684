// The shape the fan-out, small-rooms, ingest and reads scenarios share: open and join the sockets,
// then rising message (or read) rates until a step says the server is past its limit.
import { createMessageLoad } from '../load/message-load.js'
import type { ResultRow, RowScenario } from '../report/results.js'
import type { BenchServer } from '../server-process.js'
import type { LoadSocket } from '../load/socket-client.js'
import { closeAll, joinAll, openSockets, thousands, type ScenarioContext } from './scenario.js'

export interface MessageRates {
  readonly scenario: RowScenario
  readonly sockets: number
  readonly rates: readonly number[]
  /** Each socket's room; every socket in it but the sender receives each message. */
  readonly roomOf: (socket: LoadSocket) => string
  /** A room each socket joins besides `roomOf`'s, only to receive there (reads: the receipts of its own room). */
  readonly receiveIn?: (socket: LoadSocket) => string
  readonly receivers: number
  /** What the sockets send: messages (the default), or `read` frames (see MessageStep). */
  readonly frame?: 'message' | 'read'
  /** Measure the server's event-loop delay in each step (ours only). */
  readonly eventLoopDelay?: boolean
  /** After this step no higher rate is tried on this server. */
  readonly past: (row: ResultRow) => boolean
}

export async function runMessageRates (context: ScenarioContext, server: BenchServer, plan: MessageRates): Promise<void> {
  const { profile } = context
  const name = `${plan.scenario}: ${server.name}`
  const load = createMessageLoad()
  context.progress(`${name}: opening ${thousands(plan.sockets)} sockets…`)
  const sockets = await openSockets(server, plan.sockets, load.events, 100,
    (opened) => { context.progress(`${name}: ${thousands(opened)} sockets open`) })
  try {
    context.progress(`${name}: joining…`)
    if (plan.receiveIn !== undefined) await joinAll(sockets, plan.receiveIn)
    await joinAll(sockets, plan.roomOf)
    const unit = plan.frame === 'read' ? 'reads/s' : 'msg/s'
    for (const [i, rate] of plan.rates.entries()) {
      const row = await load.run(server, sockets, plan.roomOf, {
        scenario: plan.scenario,
        label: `${thousands(rate)} ${unit}`,
        rate,
        seconds: profile.stepSeconds,
        receivers: plan.receivers,
        frame: plan.frame ?? 'message',
        eventLoopDelay: plan.eventLoopDelay ?? false,
        warmupSeconds: i === 0 ? profile.warmupSeconds : 0,
        drainSeconds: profile.drainSeconds
      }, (line) => { context.progress(`${name}: ${line}`) })
      context.record(row)
      if (load.closes.size > 0) throw new Error(`${load.closes.size} sockets closed during the step (codes ${[...new Set(load.closes.values())].join(', ')})`)
      if (plan.past(row)) {
        if (i < plan.rates.length - 1) context.log(`  ${name}: past its limit at ${thousands(rate)} ${unit}; higher rates skipped`)
        break
      }
    }
  } finally {
    closeAll(sockets)
  }
}

/** Delivery is saturated: messages go unanswered, or p99 passes a second. */
export function saturated (row: ResultRow): boolean {
  return row.failures > 0 || (row.delivery?.p99 ?? 0) > 1000 || (row.ack?.p99 ?? 0) > 1000
}
