// Ingest with persistence: each socket in a room of its own (no fan-out, so the one generator
// process is not the limit), rising rates of stored and acked messages until a step's ack p99
// passes 25 ms or anything is lost: the highest rate before is the server's capacity. Ours stores
// with group commit; the hand-written peer with one INSERT per message (peers/uws-pg-insert.ts).
import { wsIngestRoom } from '../fixture.js'
import type { ResultRow } from '../report/results.js'
import { runMessageRates } from './message-rates.js'
import type { SocketScenario } from './scenario.js'

/** Capacity is the highest rate with ack p99 at most this and nothing lost (issue 15). */
export const INGEST_P99_LIMIT_MS = 25

/** Whether a step kept to the capacity's terms: every message stored and acked in time, the rate held. */
export function withinCapacity (row: ResultRow): boolean {
  return row.failures === 0 && (row.ack?.p99 ?? Infinity) <= INGEST_P99_LIMIT_MS && (row.messagesPerSecond ?? 0) >= row.offered * 0.95
}

export const ingest: SocketScenario = {
  name: 'ingest',
  servers: ['chat', 'uws-pg-insert'],
  users: (profile) => profile.ingest.sockets,
  async run (context, server) {
    const { sockets, rates } = context.profile.ingest
    await runMessageRates(context, server, {
      scenario: 'ingest',
      sockets,
      rates,
      roomOf: (socket) => wsIngestRoom(socket.index),
      receivers: 0,
      eventLoopDelay: true,
      past: (row) => !withinCapacity(row)
    })
  }
}
