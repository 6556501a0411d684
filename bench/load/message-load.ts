// Messages at a steady rate through sockets already joined to their rooms, as the fan-out,
// small-rooms and ingest scenarios need: each step sends `rate` messages/s for a while, round-robin
// over the sockets, each to its socket's room, then waits for the acks and deliveries still due.
// A body starts with `<performance.now() at send>|<step>|`, so each receiver measures its latency.
// The reads scenario sends `read` frames the same way instead: read n of a socket asks for seq n,
// its `read` reply counts as its ack and the `receipt` the room's other socket gets as a delivery,
// timed from the send of the read whose room and seq it names. The server may fold reads stored in
// one batch into one receipt (the highest), so a receipt covers every read of its room up to its seq.
import { performance } from 'node:perf_hooks'
import type { RecordableHistogram } from 'node:perf_hooks'
import type { ResultRow, RowScenario, ServerName } from '../report/results.js'
import type { LoopDelayProbe } from '../server-process.js'
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
  /** Measures the server's event-loop delay over the step, where it can (ours). */
  readonly eventLoopDelay?: LoopDelayProbe
}

export interface MessageStep {
  readonly scenario: RowScenario
  readonly label: string
  /** Messages per second in, over all sockets. */
  readonly rate: number
  readonly seconds: number
  /** Sockets that get each message (or each read's receipt) besides its sender (room size - 1). */
  readonly receivers: number
  /**
   * What the sockets send: messages (the default), or `read` frames, read n of a socket for seq n,
   * each socket in a room of its own read by no other (then `receivers` is 0 or 1).
   */
  readonly frame?: 'message' | 'read'
  /** Whether to measure the server's event-loop delay over the step, where it can (ours; its timer costs a little CPU). */
  readonly eventLoopDelay?: boolean
  /** Sent first at the same rate and not reported: connections and JIT warm up. */
  readonly warmupSeconds: number
  /** How long to wait for what is still due after the last send. */
  readonly drainSeconds: number
}

interface Tally {
  readonly id: number
  readonly frame: 'message' | 'read'
  sent: number
  acked: number
  /** Reads answered with a position below the seq they asked for: the room had run out of messages. */
  short: number
  failed: number
  /** Frames delivered: messages, or receipts. */
  delivered: number
  /** Bytes of the `message` frames delivered. */
  deliveredBytes: number
  /** Reads whose position a receipt has reached the room's other socket with (theirs or a later one's). */
  covered: number
  readonly errors: Map<string, number>
  readonly ack: RecordableHistogram
  readonly delivery: RecordableHistogram
}

interface Outstanding { readonly sentAt: number[], readonly step: number[] }
/** A room's reads by seq, and the highest seq a receipt has covered. */
interface RoomReads extends Outstanding { covered: number }

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
  /** Reads by room and seq, for their receipts: a room is read by one socket, and each read asks for the next seq. */
  const readsByRoom = new Map<string, RoomReads>()
  const counters = new Map<LoadSocket, number>()
  const unattributed = new Map<string, number>()

  const events: SocketEvents = {
    acked (socket, n, now, ack) {
      const sent = outstanding.get(socket)
      const tally = tallies[sent?.step[n] ?? -1]
      if (sent === undefined || tally === undefined) return
      tally.acked++
      if (tally.frame === 'read' && ack !== undefined && ack.seq < n) tally.short++
      recordMs(tally.ack, now - sent.sentAt[n]!)
      sent.step[n] = -1 // acked: a second ack would not count again
    },
    receipt (_socket, receipt, now) {
      const read = readsByRoom.get(receipt.room)
      const tally = tallies[read?.step[receipt.readSeq] ?? -1]
      if (read === undefined || tally === undefined) return
      tally.delivered++
      recordMs(tally.delivery, now - read.sentAt[receipt.readSeq]!)
      for (let seq = read.covered + 1; seq <= receipt.readSeq; seq++) {
        const covered = tallies[read.step[seq] ?? -1]
        if (covered !== undefined) covered.covered++
        read.step[seq] = -1
      }
      read.covered = Math.max(read.covered, receipt.readSeq)
    },
    delivered (sentAt, step, now, bytes) {
      const tally = tallies[step]
      if (tally === undefined) return
      tally.delivered++
      tally.deliveredBytes += bytes
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
        const room = roomOf(socket)
        if (tally.frame === 'read') {
          let read = readsByRoom.get(room)
          if (read === undefined) readsByRoom.set(room, read = { sentAt: [], step: [], covered: 0 })
          read.sentAt[n] = now
          read.step[n] = tally.id
          socket.read(room, n)
        } else {
          socket.send(room, n, `${now.toFixed(3)}|${tally.id}|${FILLER}`)
        }
        tally.sent++
      }
      await delay(TICK_MS)
    }
  }

  function newTally (frame: Tally['frame']): Tally {
    const tally: Tally = { id: tallies.length, frame, sent: 0, acked: 0, short: 0, failed: 0, delivered: 0, deliveredBytes: 0, covered: 0, errors: new Map(), ack: latencyHistogram(), delivery: latencyHistogram() }
    tallies.push(tally)
    return tally
  }

  /** Each acked message is due at every receiver; each read that moved the position, at its one receiver. */
  const missing = (tally: Tally, receivers: number): number => tally.frame === 'read'
    ? Math.max(0, (tally.acked - tally.short) * receivers - tally.covered)
    : Math.max(0, tally.acked * receivers - tally.delivered)

  const settled = (tally: Tally, receivers: number): boolean =>
    tally.acked + tally.failed >= tally.sent && missing(tally, receivers) === 0

  async function drain (tally: Tally, receivers: number, seconds: number): Promise<void> {
    const deadline = performance.now() + seconds * 1000
    while (!settled(tally, receivers) && performance.now() < deadline) await delay(10)
  }

  return {
    events,
    closes,
    async run (server, sockets, roomOf, step, progress) {
      if (step.warmupSeconds > 0) {
        const warmup = newTally(step.frame ?? 'message')
        await send(sockets, roomOf, warmup, step.rate, step.warmupSeconds)
        await drain(warmup, step.receivers, step.drainSeconds)
      }
      const tally = newTally(step.frame ?? 'message')
      const loopDelay = step.eventLoopDelay === true ? await server.eventLoopDelay?.() : undefined
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
      const eventLoopDelay = await loopDelay?.end()
      const notes = [...used.notes]
      let generatorBound = used.generatorBound
      if (sendSeconds > step.seconds * 1.05) {
        generatorBound = true
        notes.push(`the generator took ${sendSeconds.toFixed(1)} s to send ${step.seconds} s of messages`)
      }
      const unanswered = tally.sent - tally.acked - tally.failed
      const lost = missing(tally, step.receivers)
      if (unanswered > 0) notes.push(`${unanswered} ${tally.frame === 'read' ? 'reads' : 'messages'} not answered within ${step.drainSeconds} s of the last send`)
      if (tally.short > 0) notes.push(`${tally.short} reads answered below the seq they asked for: the rooms ran out of messages`)
      if (lost > 0) notes.push(tally.frame === 'read' ? `${lost} reads never reached the room's other socket in a receipt` : `${lost} deliveries missing`)
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
        ...(step.receivers > 0 ? { deliveriesPerSecond: round(tally.delivered / sendSeconds) } : {}),
        ...(tally.deliveredBytes > 0 ? { frameBytes: round(tally.deliveredBytes / tally.delivered) } : {}),
        ...(eventLoopDelay === undefined ? {} : { eventLoopDelay }),
        // A read's receipts are part of its cost, not a fan-out to weigh per frame.
        ...(step.receivers > 0 && tally.frame === 'message' && tally.delivered > 0 ? { cpuUsPerDelivery: round(1e6 * used.serverCpuSeconds / tally.delivered) } : {}),
        cpuUsPerMessage: perMessage,
        ...(server.postgres && tally.acked > 0 ? { databaseCpuUsPerMessage: round(1e6 * used.databaseCpuSeconds / tally.acked) } : {}),
        ...(server.redisPid !== undefined && tally.acked > 0 ? { redisCpuUsPerMessage: round(1e6 * used.redisCpuSeconds / tally.acked) } : {}),
        ...(server.nodes === undefined ? {} : { nodes: server.nodes }),
        serverCpuPercent: used.serverCpuPercent,
        serverKernelShare: used.serverKernelShare,
        serverRssMb: used.serverRssMb,
        generatorCpuPercent: used.generatorCpuPercent,
        generatorBound,
        failures: tally.failed + unanswered + tally.short + lost,
        notes
      }
    }
  }
}
