// Messages at a steady rate through sockets already joined to their rooms, as the fan-out,
// small-rooms and ingest scenarios need: each step sends `rate` messages/s for a while, round-robin
// over the sockets, each to its socket's room, then waits for the acks and deliveries still due.
// A body starts with `<performance.now() at send>|<step>|`, so each receiver measures its latency.
import { performance } from 'node:perf_hooks'
import type { RecordableHistogram } from 'node:perf_hooks'
import type { ResultRow, RowScenario, ServerName } from '../report/results.js'
import { delay, latencyHistogram, percentiles, recordMs, round, startUsage, type Measured } from './measure.js'
import type { LoadSocket, SocketEvents } from './socket-client.js'

/** The pacing timer: every TICK_MS it sends what the rate says is due. */
const TICK_MS = 2
/** A typical chat message is about 80 bytes; the stamp comes first. */
const FILLER = 'a bench message padded to a typical chat length of about eighty bytes'

/** The server a step measures: one process (a BenchServer), or a cluster's nodes, CPU summed, and its Redis. */
export interface LoadTarget extends Measured {
  readonly name: ServerName
  /** Whether it stores on Postgres, whose backends' CPU is then reported per message. */
  readonly postgres: boolean
  /** How many server processes `pid` lists, for a cluster's rows. */
  readonly nodes?: number
}

export interface MessageStep {
  readonly scenario: RowScenario
  readonly label: string
  /** Messages per second in, over all sockets. */
  readonly rate: number
  readonly seconds: number
  /** Sockets that get each message besides its sender (room size - 1). */
  readonly receivers: number
  /** Sent first at the same rate and not reported: connections and JIT warm up. */
  readonly warmupSeconds: number
  /** How long to wait for what is still due after the last send. */
  readonly drainSeconds: number
}

interface Tally {
  readonly id: number
  sent: number
  acked: number
  failed: number
  delivered: number
  readonly errors: Map<string, number>
  readonly ack: RecordableHistogram
  readonly delivery: RecordableHistogram
}

interface Outstanding { readonly sentAt: number[], readonly step: number[] }

export interface MessageLoad {
  /** Give these to `openSocket` for every socket the load drives. */
  readonly events: SocketEvents
  /** Sockets that closed while in use, with their close codes. */
  readonly closes: Map<number, number>
  run (server: LoadTarget, sockets: readonly LoadSocket[], roomOf: (socket: LoadSocket) => string, step: MessageStep,
    progress: (line: string) => void): Promise<ResultRow>
}

export function createMessageLoad (): MessageLoad {
  const tallies: Tally[] = []
  const outstanding = new Map<LoadSocket, Outstanding>()
  const closes = new Map<number, number>()
  const counters = new Map<LoadSocket, number>()
  const unattributed = new Map<string, number>()

  const events: SocketEvents = {
    acked (socket, n, now) {
      const sent = outstanding.get(socket)
      const tally = tallies[sent?.step[n] ?? -1]
      if (sent === undefined || tally === undefined) return
      tally.acked++
      recordMs(tally.ack, now - sent.sentAt[n]!)
      sent.step[n] = -1 // acked: a second ack would not count again
    },
    delivered (sentAt, step, now) {
      const tally = tallies[step]
      if (tally === undefined) return
      tally.delivered++
      recordMs(tally.delivery, now - sentAt)
    },
    failed (socket, n, code) {
      const sent = outstanding.get(socket)
      const tally = tallies[sent?.step[n] ?? -1]
      const errors = tally?.errors ?? unattributed
      errors.set(code, (errors.get(code) ?? 0) + 1)
      if (tally === undefined || sent === undefined) return
      tally.failed++
      sent.step[n] = -1
    },
    closed (socket, code) { closes.set(socket.index, code) }
  }

  /** Sends at `rate` for `seconds` as tally `tally`; resolves when the last message is sent. */
  async function send (sockets: readonly LoadSocket[], roomOf: (socket: LoadSocket) => string, tally: Tally, rate: number, seconds: number): Promise<void> {
    const total = Math.round(rate * seconds)
    const started = performance.now()
    let next = 0
    while (tally.sent < total) {
      const due = Math.min(total, Math.floor(rate * (performance.now() - started) / 1000)) - tally.sent
      for (let i = 0; i < due; i++) {
        let socket = sockets[next++ % sockets.length]!
        for (let tries = 0; !socket.open && tries < sockets.length; tries++) socket = sockets[next++ % sockets.length]!
        if (!socket.open) throw new Error('every socket has closed')
        const n = (counters.get(socket) ?? 0) + 1
        counters.set(socket, n)
        let sent = outstanding.get(socket)
        if (sent === undefined) outstanding.set(socket, sent = { sentAt: [], step: [] })
        const now = performance.now()
        sent.sentAt[n] = now
        sent.step[n] = tally.id
        socket.send(roomOf(socket), n, `${now.toFixed(3)}|${tally.id}|${FILLER}`)
        tally.sent++
      }
      await delay(TICK_MS)
    }
  }

  function newTally (): Tally {
    const tally: Tally = { id: tallies.length, sent: 0, acked: 0, failed: 0, delivered: 0, errors: new Map(), ack: latencyHistogram(), delivery: latencyHistogram() }
    tallies.push(tally)
    return tally
  }

  const settled = (tally: Tally, receivers: number): boolean =>
    tally.acked + tally.failed >= tally.sent && tally.delivered >= tally.acked * receivers

  async function drain (tally: Tally, receivers: number, seconds: number): Promise<void> {
    const deadline = performance.now() + seconds * 1000
    while (!settled(tally, receivers) && performance.now() < deadline) await delay(10)
  }

  return {
    events,
    closes,
    async run (server, sockets, roomOf, step, progress) {
      if (step.warmupSeconds > 0) {
        const warmup = newTally()
        await send(sockets, roomOf, warmup, step.rate, step.warmupSeconds)
        await drain(warmup, step.receivers, step.drainSeconds)
      }
      const tally = newTally()
      const usage = await startUsage(server)
      const started = performance.now()
      let last = { at: started, sent: 0, acked: 0, delivered: 0 }
      const ticker = setInterval(() => {
        const now = performance.now()
        const s = (now - last.at) / 1000
        progress(`${step.label}: ${((now - started) / 1000).toFixed(0)}/${step.seconds} s, ` +
          `sent ${Math.round((tally.sent - last.sent) / s)}/s, acked ${Math.round((tally.acked - last.acked) / s)}/s` +
          (step.receivers > 0 ? `, delivered ${Math.round((tally.delivered - last.delivered) / s)}/s` : ''))
        last = { at: now, sent: tally.sent, acked: tally.acked, delivered: tally.delivered }
      }, 1000)
      let sendSeconds: number
      try {
        await send(sockets, roomOf, tally, step.rate, step.seconds)
        sendSeconds = (performance.now() - started) / 1000
        await drain(tally, step.receivers, step.drainSeconds)
      } finally {
        clearInterval(ticker)
      }
      const used = await usage.end()
      const notes = [...used.notes]
      let generatorBound = used.generatorBound
      if (sendSeconds > step.seconds * 1.05) {
        generatorBound = true
        notes.push(`the generator took ${sendSeconds.toFixed(1)} s to send ${step.seconds} s of messages`)
      }
      const unanswered = tally.sent - tally.acked - tally.failed
      const missing = Math.max(0, tally.acked * step.receivers - tally.delivered)
      if (unanswered > 0) notes.push(`${unanswered} messages not acked within ${step.drainSeconds} s of the last send`)
      if (missing > 0) notes.push(`${missing} deliveries missing`)
      for (const [code, count] of tally.errors) notes.push(`${count} × error ${code}`)
      const perMessage = tally.acked === 0 ? undefined : round(1e6 * used.serverCpuSeconds / tally.acked)
      return {
        scenario: step.scenario,
        server: server.name,
        step: step.label,
        offered: step.rate,
        ...(step.receivers > 0 ? { delivery: percentiles(tally.delivery) } : {}),
        ack: percentiles(tally.ack),
        messagesPerSecond: round(tally.acked / sendSeconds),
        ...(step.receivers > 0
          ? { deliveriesPerSecond: round(tally.delivered / sendSeconds), cpuUsPerDelivery: tally.delivered === 0 ? undefined : round(1e6 * used.serverCpuSeconds / tally.delivered) }
          : {}),
        cpuUsPerMessage: perMessage,
        ...(server.postgres && tally.acked > 0 ? { databaseCpuUsPerMessage: round(1e6 * used.databaseCpuSeconds / tally.acked) } : {}),
        ...(server.redisPid !== undefined && tally.acked > 0 ? { redisCpuUsPerMessage: round(1e6 * used.redisCpuSeconds / tally.acked) } : {}),
        ...(server.nodes === undefined ? {} : { nodes: server.nodes }),
        serverCpuPercent: used.serverCpuPercent,
        serverKernelShare: used.serverKernelShare,
        serverRssMb: used.serverRssMb,
        generatorCpuPercent: used.generatorCpuPercent,
        generatorBound,
        failures: tally.failed + unanswered + missing,
        notes
      }
    }
  }
}
