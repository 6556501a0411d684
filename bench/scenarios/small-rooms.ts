// Many small rooms: every socket in one room of 10, messages spread over all rooms, so each goes
// to 9 others: per-message costs (parse, store, ack) weigh more than in one big room.
import { SMALL_ROOM_SIZE, wsSmallRoom } from '../fixture.js'
import { runMessageRates, saturated } from './message-rates.js'
import type { SocketScenario } from './scenario.js'

export const smallRooms: SocketScenario = {
  name: 'small-rooms',
  servers: ['chat', 'uws-raw', 'socketio'],
  users: (profile) => profile.smallRooms.sockets,
  async run (context, server) {
    const { sockets, rates } = context.profile.smallRooms
    await runMessageRates(context, server, {
      scenario: 'small-rooms',
      sockets,
      rates,
      roomOf: (socket) => wsSmallRoom(socket.index),
      receivers: Math.min(SMALL_ROOM_SIZE, sockets) - 1,
      past: saturated
    })
  }
}
