// Read positions: what one `read` costs. Each socket reads another user's room (socket i reads room
// i + 1, written by user i + 1), one position forward per read: read n asks for seq n, and the room
// holds enough messages (seeded by the server, `readRooms`) that every read of the ramp moves it.
// Each socket also joins its own room, so every read that moves a position sends one `receipt`, to
// its author. Rising rates until the reply's p99 passes 50 ms. Ours only: no peer has read positions.
import { wsReadRoom } from '../fixture.js'
import type { Profile } from '../profiles.js'
import { runMessageRates } from './message-rates.js'
import type { SocketScenario } from './scenario.js'

/** The ramp stops at the first step whose `read` reply p99 is above this. */
export const READ_P99_LIMIT_MS = 50

/**
 * Messages each read room needs: the most reads one socket sends over the whole ramp. The load
 * starts each step's round-robin at socket 0, so socket 0 sends the rounded-up share of every step.
 */
function readsPerSocket (profile: Profile): number {
  const { sockets, rates } = profile.reads
  const share = (rate: number, seconds: number): number => Math.ceil(Math.round(rate * seconds) / sockets)
  return share(rates[0] ?? 0, profile.warmupSeconds) + rates.reduce((sum, rate) => sum + share(rate, profile.stepSeconds), 0)
}

export const reads: SocketScenario = {
  name: 'reads',
  servers: ['chat'],
  users: (profile) => profile.reads.sockets,
  readRooms: (profile) => ({ rooms: profile.reads.sockets, messages: readsPerSocket(profile) }),
  async run (context, server) {
    const { sockets, rates } = context.profile.reads
    await runMessageRates(context, server, {
      scenario: 'reads',
      frame: 'read',
      sockets,
      rates,
      roomOf: (socket) => wsReadRoom((socket.index + 1) % sockets),
      receiveIn: (socket) => wsReadRoom(socket.index),
      receivers: 1,
      past: (row) => row.failures > 0 || (row.ack?.p99 ?? Infinity) > READ_P99_LIMIT_MS
    })
  }
}
