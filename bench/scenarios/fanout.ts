// Fan-out: one room holding every socket (1,000), rising publish rates; each message goes to the
// 999 others. The figure that matters is server CPU per delivered frame, against raw uWS and Socket.IO.
import { WS_FANOUT_ROOM } from '../fixture.js'
import { runMessageRates, saturated } from './message-rates.js'
import type { SocketScenario } from './scenario.js'

export const fanout: SocketScenario = {
  name: 'fanout',
  servers: ['chat', 'uws-raw', 'socketio'],
  users: (profile) => profile.fanout.sockets,
  async run (context, server) {
    const { sockets, rates } = context.profile.fanout
    await runMessageRates(context, server, { scenario: 'fanout', sockets, rates, roomOf: () => WS_FANOUT_ROOM, receivers: sockets - 1, past: saturated })
  }
}
