// A node that dies (SIGKILL) or is stopped (SIGTERM) while its users sit in rooms with users on
// other nodes. API.md: presence is the union of the nodes, and a user goes offline when their last
// socket in the room closes or misses its heartbeat; a stopped node writes what it accepted and
// closes sockets with 1001. The cluster contract adds: after a SIGKILL, the other nodes say the
// user is offline within HEARTBEAT_TIMEOUT + 10 s, once per user and room across the cluster;
// after a SIGTERM, at once (not after a lease).
import t from 'tap'
import { createRoom, delay, readWholeHistory, sameSeqs, type Account } from '../helpers/chat.js'
import { CLUSTER_HEARTBEAT_SECONDS, clusterSkip, httpStatusWithin, startCluster, userStatusWithin, type ClusterNode } from '../helpers/cluster.js'
import { framesOf, joinOn, seqsOf, settle, startSender, type JoinedSocket } from '../helpers/cluster-traffic.js'
import { barrier, nextOrNull, type Frame } from '../helpers/socket.js'

/** After a SIGKILL: HEARTBEAT_TIMEOUT + 10 s. */
const KILLED_OFFLINE_MS = (CLUSTER_HEARTBEAT_SECONDS + 10) * 1000
/** After a SIGTERM: as good as at once, well inside one lease (HEARTBEAT_TIMEOUT). */
const STOPPED_OFFLINE_MS = 3000
/** How long to keep listening for a duplicate after the one expected frame came. */
const QUIET_MS = 2500

const offlineOf = (user: Account, room: string) => (f: Frame): boolean => f.type === 'presence' && f.room === room && f.userId === user.id && f.status === 'offline'

t.test('nodes failing under their users', { skip: clusterSkip() }, async (t) => {
  const cluster = await startCluster(t, { nodes: 4 })
  const [n1, n2, n3, n4] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode, ClusterNode]
  const [alice, carol, bob, dave] = await cluster.users(['alice', 'carol', 'bob', 'dave']) as [Account, Account, Account, Account]
  const main = 'n.main'
  const side = 'n.side'
  await createRoom(n1.api, alice, main)
  await createRoom(n1.api, alice, side)

  // alice (node 1) is in both rooms, carol (node 2) in main; bob's only socket is on node 4 (both
  // rooms), dave's on node 3 (main).
  const aliceMain = await joinOn(t, n1, alice, main)
  const aliceSide = await joinOn(t, n1, alice, side, { socket: aliceMain.socket })
  const carolMain = await joinOn(t, n2, carol, main)
  const bobMain = await joinOn(t, n4, bob, main)
  await joinOn(t, n4, bob, side, { socket: bobMain.socket })
  const daveMain = await joinOn(t, n3, dave, main)
  const watchers: Array<[JoinedSocket, string]> = [[aliceMain, main], [aliceSide, side], [carolMain, main]]

  const seen = await Promise.all(watchers.map(async ([w, room]) => await nextOrNull(w.socket, (f) => f.type === 'presence' && f.room === room && f.userId === bob.id && f.status === 'online', 4000)))
  watchers.forEach(([w, room], i) => t.ok(seen[i] !== null, `before: ${w.user.username} on ${w.node.name} sees bob (node 4) come online in ${room}`))
  t.equal(await userStatusWithin(n1, bob, alice, 'online', 2000), 'online', 'before: GET /users/:bob/presence on node 1 says online')

  t.test('SIGKILL of the node with bob\'s only socket: one presence offline per room and watcher within HEARTBEAT_TIMEOUT + 10 s', async (t) => {
    const killedAt = Date.now()
    const exit = await n4.kill('SIGKILL')
    t.same(exit, { code: null, signal: 'SIGKILL' }, 'node 4 was killed')
    const arrivals = await Promise.all(watchers.map(async ([w, room]) => {
      const frame = await nextOrNull(w.socket, offlineOf(bob, room), Math.max(1, killedAt + KILLED_OFFLINE_MS - Date.now()))
      return frame === null ? null : { frame, after: Date.now() - killedAt }
    }))
    watchers.forEach(([w, room], i) => {
      const got = arrivals[i]
      t.ok(got !== null && got !== undefined, `${w.user.username} on ${w.node.name}: presence offline for bob in ${room} within ${KILLED_OFFLINE_MS} ms${got == null ? '' : ` (after ${got.after} ms)`}`)
      if (got != null) t.equal(got.frame.username, bob.username, `${w.user.username}: the offline frame names bob`)
    })
    await delay(QUIET_MS)
    await Promise.all([aliceMain, carolMain].map(async (w) => await barrier(w.socket)))
    watchers.forEach(([w, room]) => t.equal(framesOf(w.socket, 'presence', room, { userId: bob.id, status: 'offline' }).length, 1,
      `${w.user.username} on ${w.node.name}: exactly one presence offline for bob in ${room} (one across the cluster, not one per node)`))
    for (const node of [n1, n2]) {
      t.equal(await userStatusWithin(node, bob, alice, 'offline', 3000), 'offline', `GET /users/:bob/presence on ${node.name}: offline`)
      const room = await node.api.request('GET', `/rooms/${main}/presence`, { token: alice.token })
      t.notOk((room.body?.online as Array<{ userId: string }> | undefined ?? []).some((o) => o.userId === bob.id), `GET /rooms/${main}/presence on ${node.name}: bob is not listed`)
    }
  })

  t.test('SIGTERM of the node with dave\'s only socket mid-burst: presence offline at once, every ack in history', async (t) => {
    const burst = startSender(t, daveMain.socket, main, { prefix: 'dave', count: 300, chunk: 10, everyMs: 10 })
    await settle(() => burst.acks.size >= 50, 15_000)
    t.comment(`SIGTERM with ${burst.sent()} sent and ${burst.acks.size} acked`)
    const signalledAt = Date.now()
    const exit = await n3.stop('SIGTERM')
    const exitedAt = Date.now()
    burst.stop()
    t.same(exit, { code: 0, signal: null }, `node 3 exits 0 (in ${exitedAt - signalledAt} ms)`)
    const closed = await Promise.race([daveMain.socket.closed, delay(2000).then(() => null)])
    t.equal(closed?.code, 1001, 'dave\'s socket was closed with 1001')
    const mainWatchers = [aliceMain, carolMain]
    const arrivals = await Promise.all(mainWatchers.map(async (w) => {
      const frame = await nextOrNull(w.socket, offlineOf(dave, main), Math.max(1, exitedAt + STOPPED_OFFLINE_MS - Date.now()))
      return frame === null ? null : Date.now() - signalledAt
    }))
    mainWatchers.forEach((w, i) => t.ok(arrivals[i] != null, `${w.user.username} on ${w.node.name}: presence offline for dave within ${STOPPED_OFFLINE_MS} ms of node 3's exit${arrivals[i] == null ? '' : ` (${String(arrivals[i])} ms after the signal)`}`))
    await delay(QUIET_MS)
    await Promise.all(mainWatchers.map(async (w) => await barrier(w.socket)))
    for (const w of mainWatchers) t.equal(framesOf(w.socket, 'presence', main, { userId: dave.id, status: 'offline' }).length, 1, `${w.user.username} on ${w.node.name}: exactly one presence offline for dave`)

    t.comment(`in the end dave sent ${burst.sent()}: ${burst.acks.size} acked, ${burst.errors.size} errors`)
    const history = await readWholeHistory(n1.api, alice.token, main)
    const stored = new Map(history.map((m) => [m.clientMsgId, m]))
    const missing = [...burst.acks.values()].filter((a) => stored.get(a.clientMsgId)?.id !== a.id || stored.get(a.clientMsgId)?.seq !== a.seq)
    t.strictSame(missing.slice(0, 5).map((a) => a.clientMsgId), [], `every one of dave's ${burst.acks.size} acks is in history with its id and seq`)
    // What node 3 stored reached alice on node 1: each seq once, in order.
    await settle(() => seqsOf(aliceMain.socket, main).length >= history.length, 5000)
    sameSeqs(t, seqsOf(aliceMain.socket, main), history.map((m) => m.seq), 'alice on node 1 got every stored message of dave\'s, once, in order')

    for (const node of [n1, n2]) t.ok(await httpStatusWithin(node, '/ready', 200, 5000), `${node.name} is still ready`)
  })
})
