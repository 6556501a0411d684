// Connect storm: N sockets opened as fast as `concurrency` upgrades at a time allow, each carrying a
// JWT the server verifies before accepting it (ours in the upgrade, Socket.IO in its middleware;
// raw uWS checks nothing). A socket counts once the server has accepted it (welcome or Socket.IO
// connect): upgrades/s, server CPU per upgrade, and the time each took.
import { performance } from 'node:perf_hooks'
import { latencyHistogram, percentiles, recordMs, round, startUsage } from '../load/measure.js'
import { IGNORE_EVENTS, openSocket, type LoadSocket } from '../load/socket-client.js'
import { eachLimited } from '../server-process.js'
import { closeAll, thousands, type SocketScenario } from './scenario.js'

export const connect: SocketScenario = {
  name: 'connect',
  servers: ['chat', 'uws-raw', 'socketio'],
  users: (profile) => profile.connect.sockets,
  async run (context, server) {
    const { sockets: count, concurrency } = context.profile.connect
    const sockets: LoadSocket[] = []
    const took = latencyHistogram()
    const errors = new Map<string, number>()
    let failures = 0
    const usage = await startUsage(server)
    const started = performance.now()
    try {
      await eachLimited(server.users.slice(0, count), concurrency, async (user, i) => {
        const at = performance.now()
        try {
          sockets.push(await openSocket(server, user, i, IGNORE_EVENTS))
          recordMs(took, performance.now() - at)
        } catch (error) {
          failures++
          const message = error instanceof Error ? error.message.replace(/^socket \d+: /, '') : String(error)
          errors.set(message, (errors.get(message) ?? 0) + 1)
        }
        if ((i + 1) % 1000 === 0) context.progress(`connect: ${server.name}: ${thousands(i + 1)} sockets`)
      })
      const seconds = (performance.now() - started) / 1000
      const used = await usage.end()
      context.record({
        scenario: 'connect',
        server: server.name,
        step: `${thousands(count)} sockets, ${concurrency} at a time`,
        offered: count,
        request: percentiles(took),
        upgradesPerSecond: round(sockets.length / seconds),
        cpuUsPerUpgrade: sockets.length === 0 ? undefined : round(1e6 * used.serverCpuSeconds / sockets.length),
        serverCpuPercent: used.serverCpuPercent,
        serverRssMb: used.serverRssMb,
        generatorCpuPercent: used.generatorCpuPercent,
        generatorBound: used.generatorBound,
        failures,
        notes: [...used.notes, ...[...errors].map(([message, n]) => `${n} × ${message}`)]
      })
    } finally {
      closeAll(sockets)
    }
  }
}
