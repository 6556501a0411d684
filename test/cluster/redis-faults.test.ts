// Redis faults under traffic (API.md, Guarantees): "A joined socket receives each seq of its room
// once, in order, on any node, even when Redis loses frames or goes away for a while: what Redis
// lost is filled from the database, without a rejoin"; `/ready` is 200 only while Redis answers.
// (a) the Redis server drops every pub/sub connection mid-stream (CLIENT KILL TYPE pubsub, from a
// client of the test's own); (b) the Redis server is stopped mid-traffic and started again on
// the same port. Senders and watchers sit on all three nodes and never rejoin.
import t, { type Test } from 'tap'
import { createRoom, delay, range, sameSeqs, type Account } from '../helpers/chat.js'
import { clusterSkip, httpStatusWithin, startCluster, type Cluster, type ClusterNode } from '../helpers/cluster.js'
import { ackedSeqs, allDelivered, checkNoRejoin, checkStream, joinOn, settle, startSender, type JoinedSocket, type Sender } from '../helpers/cluster-traffic.js'
import type { LogLine } from '../helpers/spawn.js'

const ANSWER_MS = 30_000
/** How long after the senders finish (or Redis is back) every socket must hold every acked seq. */
const CATCH_UP_MS = 20_000
/** How long Redis stays down in (b), while the senders go on. */
const OUTAGE_MS = 4000

const label = (j: JoinedSocket): string => `${j.user.username} on ${j.node.name}`
const ackCount = (senders: readonly Sender[]): number => senders.reduce((n, s) => n + s.acks.size, 0)

/** Warn-or-worse log lines that mention Redis, from `from` on. */
function redisWarnings (logs: readonly LogLine[], from: number): LogLine[] {
  return logs.slice(from).filter((l) => l.level >= 40 && /redis/i.test(JSON.stringify(l)))
}

/** A sender and a watcher on every node, joined to a fresh room. */
async function setUp (t: Test, cluster: Cluster, users: readonly Account[], room: string): Promise<{ senders: JoinedSocket[], watchers: JoinedSocket[] }> {
  const nodes = cluster.nodes
  await createRoom(nodes[0]!.api, users[0]!, room)
  const senders = await Promise.all(nodes.map(async (node, i) => await joinOn(t, node, users[i]!, room)))
  const watchers = await Promise.all(nodes.map(async (node, i) => await joinOn(t, node, users[nodes.length + i]!, room)))
  return { senders, watchers }
}

/** Every acked seq once (1..N), and every socket holding them once, in order, on the socket it joined with. */
async function checkEverySocket (t: Test, senders: readonly Sender[], sockets: readonly JoinedSocket[], room: string, what: string): Promise<void> {
  const acked = ackedSeqs(senders)
  sameSeqs(t, acked, range(1, acked.length), `the acks hold seqs 1..${acked.length}, each once`)
  const delivered = await allDelivered(sockets.map((s) => s.socket), room, acked, CATCH_UP_MS)
  t.ok(delivered, `${what}: every socket on every node holds every acked seq within ${CATCH_UP_MS} ms`)
  for (const s of sockets) {
    checkStream(t, s.socket, room, acked, label(s))
    checkNoRejoin(t, s.socket, room, label(s))
  }
}

t.test('Redis faults under traffic on three nodes', { skip: clusterSkip() }, async (t) => {
  const cluster = await startCluster(t, { nodes: 3 })
  const nodes = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode]
  const users = await cluster.users(['send1', 'send2', 'send3', 'watch1', 'watch2', 'watch3'])

  t.test('(a) pub/sub connections killed mid-stream: every socket still gets every seq once, in order, no rejoin', async (t) => {
    const room = 'f.pubsub'
    const { senders, watchers } = await setUp(t, cluster, users, room)
    // 3 × 300 messages over about 3 s; the pub/sub connections are killed three times meanwhile.
    const streams = senders.map((s) => startSender(t, s.socket, room, { prefix: `a${s.node.index}`, count: 300, chunk: 3, everyMs: 30 }))
    const killed: number[] = []
    for (const atAcks of [150, 400, 650]) {
      await settle(() => ackCount(streams) >= atAcks, ANSWER_MS)
      killed.push(Number(await cluster.redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub')))
    }
    t.comment(`pub/sub connections killed: ${killed.join(', ')}; ${streams.reduce((n, s) => n + s.sent(), 0)} of 900 sent by the last kill`)
    t.ok((killed[0] ?? 0) >= nodes.length, `the first kill dropped a pub/sub connection of every node (${killed[0] ?? 0}), so the test cut something`)
    t.ok(streams.some((s) => s.sent() < 300), 'the last kill came while messages were still being sent')
    await Promise.all(streams.map(async (s) => await s.finished))
    t.ok(await settle(() => streams.every((s) => s.answered()), ANSWER_MS), 'every message is answered')
    t.strictSame(streams.map((s) => [...s.errors.values()].slice(0, 3)), [[], [], []], 'no errors')
    t.strictSame(streams.map((s) => s.acks.size), [300, 300, 300], 'every message is acked')
    await checkEverySocket(t, streams, [...senders, ...watchers], room, 'after the kills')
  })

  t.test('(b) Redis stopped mid-traffic and started again on the same port: acks go on, /ready says 503 then 200, every socket catches up without a rejoin', async (t) => {
    const room = 'f.outage'
    const { senders, watchers } = await setUp(t, cluster, users, room)
    for (const node of nodes) t.ok(await httpStatusWithin(node, '/ready', 200, 5000), `${node.name}: ready before the outage`)
    const streams = senders.map((s) => startSender(t, s.socket, room, { prefix: `b${s.node.index}`, chunk: 2, everyMs: 40 }))
    await settle(() => ackCount(streams) >= 100, ANSWER_MS)

    const logFrom = nodes.map((n) => n.logs.length)
    await cluster.redis.stop()
    const stoppedAt = Date.now()
    const acksAtStop = ackCount(streams)
    const notReady = await Promise.all(nodes.map(async (node) => await httpStatusWithin(node, '/ready', 503, 5000)))
    nodes.forEach((node, i) => t.ok(notReady[i], `${node.name}: /ready is 503 while Redis is down`))
    await delay(Math.max(0, stoppedAt + OUTAGE_MS - Date.now())) // traffic goes on through the outage
    const stillDown = await Promise.all(nodes.map(async (node) => (await node.api.request('GET', '/ready')).status))
    t.strictSame(stillDown, nodes.map(() => 503), `/ready is still 503 on every node after ${OUTAGE_MS} ms down`)
    const ackedDuringOutage = ackCount(streams) - acksAtStop
    t.ok(ackedDuringOutage >= 50, `messages are still acked while Redis is down (${ackedDuringOutage} in ${OUTAGE_MS} ms)`)

    await cluster.redis.start()
    t.comment(`Redis down for ${Date.now() - stoppedAt} ms, back on port ${cluster.redis.port}`)
    await delay(1000) // and a little past Redis's return
    for (const s of streams) s.stop()
    t.ok(await settle(() => streams.every((s) => s.answered()), ANSWER_MS), 'every message is answered')
    t.strictSame(streams.map((s) => [...s.errors.values()].slice(0, 3)), [[], [], []], 'no errors (the database was up all along)')
    t.comment(`sent ${streams.map((s) => s.sent()).join(' + ')}, acked ${ackCount(streams)}`)

    const ready = await Promise.all(nodes.map(async (node) => await httpStatusWithin(node, '/ready', 200, 10_000)))
    nodes.forEach((node, i) => t.ok(ready[i], `${node.name}: /ready is 200 again within 10 s of Redis's return`))
    await checkEverySocket(t, streams, [...senders, ...watchers], room, 'after Redis came back')

    // The outage is logged per node, not per message.
    for (const [i, node] of nodes.entries()) {
      const warnings = redisWarnings(node.logs, logFrom[i]!)
      t.ok(warnings.length >= 1 && warnings.length < 5, `${node.name} logs the Redis problem (warn or worse) 1-4 times, not once per message: ${warnings.length}`,
        warnings.length >= 5 ? { diagnostic: true, first: warnings.slice(0, 8).map((w) => w.msg) } : {})
    }
  })
})
