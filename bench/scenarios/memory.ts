// Idle memory per socket: N authenticated sockets (19,000 in the quick and full profiles, the
// issue's count; the process file limit here is 20,000, and the generator and the server each hold
// one descriptor per socket), each joined to a room of 10, then quiet. The server's RSS is read before
// the first socket and with all of them joined, each time after a few seconds of quiet and a full
// GC (bench servers run with --expose-gc and collect on SIGUSR2), as the median of several samples.
// The runner gives this scenario each server first, before any other load has grown its heap.
import { wsSmallRoom } from '../fixture.js'
import { IGNORE_EVENTS } from '../load/socket-client.js'
import { delay, round, startUsage } from '../load/measure.js'
import { sampleProcess } from '../process-stats.js'
import type { BenchServer } from '../server-process.js'
import { closeAll, joinAll, openSockets, thousands, type SocketScenario } from './scenario.js'

/** Longer before the first reading: start-up (seeding the embedded database, say) settles first. */
const FIRST_QUIET_MS = 4000
const QUIET_MS = 2000
const SAMPLES = 5

async function settledRss (server: BenchServer, quietMs: number): Promise<number> {
  await delay(quietMs)
  server.collectGarbage()
  await delay(500)
  const samples: number[] = []
  for (let i = 0; i < SAMPLES; i++) {
    samples.push(sampleProcess(server.pid).rssBytes)
    await delay(200)
  }
  return samples.sort((a, b) => a - b)[Math.floor(SAMPLES / 2)]!
}

export const memory: SocketScenario = {
  name: 'memory',
  servers: ['chat', 'uws-raw', 'socketio'],
  users: (profile) => profile.memory.sockets,
  async run (context, server) {
    const { sockets: count } = context.profile.memory
    context.progress(`memory: ${server.name}: settling…`)
    const before = await settledRss(server, FIRST_QUIET_MS)
    const usage = await startUsage(server)
    const sockets = await openSockets(server, count, IGNORE_EVENTS, 100,
      (opened) => { context.progress(`memory: ${server.name}: ${thousands(opened)} sockets open`) })
    try {
      await joinAll(sockets, (socket) => wsSmallRoom(socket.index))
      const used = await usage.end()
      context.progress(`memory: ${server.name}: ${thousands(count)} sockets joined, settling…`)
      const after = await settledRss(server, QUIET_MS)
      context.record({
        scenario: 'memory',
        server: server.name,
        step: `${thousands(count)} sockets`,
        offered: count,
        rssKbPerSocket: round((after - before) / 1024 / count),
        serverRssMb: round(after / 2 ** 20),
        generatorCpuPercent: used.generatorCpuPercent,
        generatorBound: false,
        failures: sockets.filter((socket) => !socket.open).length,
        notes: [`RSS ${round(before / 2 ** 20)} MB before the sockets, ${round(after / 2 ** 20)} MB with them joined (after GC)`]
      })
    } finally {
      closeAll(sockets)
    }
  }
}
