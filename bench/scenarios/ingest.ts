// Ingest with persistence: each socket in a room of its own (no fan-out, so the one generator
// process is not the limit), rising rates of stored and acked messages until ack p99 passes 50 ms.
// Ours stores with group commit; the Socket.IO peer with one INSERT per message.
import { wsIngestRoom } from '../fixture.js'
import { runMessageRates } from './message-rates.js'
import type { SocketScenario } from './scenario.js'

/** The ramp stops at the first step whose ack p99 is above this. */
export const INGEST_P99_LIMIT_MS = 50

export const ingest: SocketScenario = {
  name: 'ingest',
  servers: ['chat', 'socketio-insert'],
  users: (profile) => profile.ingest.sockets,
  async run (context, server) {
    const { sockets, rates } = context.profile.ingest
    await runMessageRates(context, server, {
      scenario: 'ingest',
      sockets,
      rates,
      roomOf: (socket) => wsIngestRoom(socket.index),
      receivers: 0,
      past: (row) => row.failures > 0 || (row.ack?.p99 ?? Infinity) > INGEST_P99_LIMIT_MS
    })
  }
}
