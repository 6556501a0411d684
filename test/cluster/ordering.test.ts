// Ordering across nodes (API.md, Guarantees): "seq is per room, starts at 1, and has no gaps and no
// duplicates, also with several nodes"; "a joined socket receives each seq of its room once, in
// order, on any node"; history returns exactly what was acked; a join with afterSeq sees each seq
// once, in order, with no gap across the replay and live traffic.
import t from 'tap'
import { createRoom, range, readWholeHistory, sameSeqs, type Account } from '../helpers/chat.js'
import { clusterSkip, startCluster, type ClusterNode } from '../helpers/cluster.js'
import { ackedSeqs, allDelivered, checkNoRejoin, checkStream, joinOn, seqsOf, settle, startSender, type Sender } from '../helpers/cluster-traffic.js'

/** Per sender, in the first phase (3 senders). */
const PER_SENDER = 300
/** Per sender, in the second phase (the senders on nodes 1 and 3). */
const LATER_PER_SENDER = 250
const ANSWER_MS = 30_000
const DELIVERY_MS = 10_000

t.test('concurrent senders on three nodes, one room', { skip: clusterSkip() }, async (t) => {
  const cluster = await startCluster(t, { nodes: 3 })
  const nodes = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode]
  const [n1, n2, n3] = nodes
  const users = await cluster.users(['send1', 'send2', 'send3', 'watch1', 'watch2', 'watch3', 'joiner'])
  const [s1, s2, s3, w1, w2, w3, joiner] = users as [Account, Account, Account, Account, Account, Account, Account]
  const room = 'o.order'
  await createRoom(n1.api, s1, room)

  const senders = [await joinOn(t, n1, s1, room), await joinOn(t, n2, s2, room), await joinOn(t, n3, s3, room)]
  const watchers = [await joinOn(t, n1, w1, room), await joinOn(t, n2, w2, room), await joinOn(t, n3, w3, room)]
  const everyone = [...senders, ...watchers]
  const label = (j: { user: Account, node: ClusterNode }): string => `${j.user.username} on ${j.node.name}`

  // Phase 1: 3 × 300 messages, 10 per sender every 15 ms, not waiting for acks.
  const started = Date.now()
  const first: Sender[] = senders.map((s) => startSender(t, s.socket, room, { prefix: `p1-${s.node.index}`, count: PER_SENDER, chunk: 10, everyMs: 15 }))
  await Promise.all(first.map(async (s) => await s.finished))
  const answered = await settle(() => first.every((s) => s.answered()), ANSWER_MS)
  t.ok(answered, 'every message of phase 1 is answered')
  t.strictSame(first.map((s) => [...s.errors.values()].slice(0, 3)), [[], [], []], 'no errors')
  t.strictSame(first.map((s) => s.acks.size), [PER_SENDER, PER_SENDER, PER_SENDER], 'every message of phase 1 is acked')
  const acked1 = ackedSeqs(first)
  sameSeqs(t, acked1, range(1, 3 * PER_SENDER), `the acks hold seqs 1..${3 * PER_SENDER}, each once`)
  t.comment(`phase 1: ${acked1.length} acked in ${Date.now() - started} ms`)

  const delivered = await allDelivered(everyone.map((s) => s.socket), room, acked1, DELIVERY_MS)
  t.ok(delivered, `every socket on every node has every acked seq within ${DELIVERY_MS} ms`)
  for (const s of everyone) checkStream(t, s.socket, room, acked1, `after phase 1, ${label(s)}`)

  const history = await readWholeHistory(n2.api, w2.token, room)
  const ackById = new Map(first.flatMap((s) => [...s.acks.values()]).map((a) => [a.clientMsgId as string, a]))
  sameSeqs(t, history.map((m) => m.seq), acked1, 'history (read on node 2) holds exactly the acked seqs, in order')
  const mismatched = history.filter((m) => { const a = ackById.get(m.clientMsgId ?? ''); return a?.id !== m.id || a?.seq !== m.seq })
  t.strictSame(mismatched.slice(0, 3), [], 'each history message has its ack\'s id and seq')

  // Phase 2: nodes 1 and 3 keep writing while a socket on node 2 joins with afterSeq.
  const afterSeq = Math.floor(acked1.length / 2)
  const second: Sender[] = [senders[0]!, senders[2]!].map((s) => startSender(t, s.socket, room, { prefix: `p2-${s.node.index}`, count: LATER_PER_SENDER, chunk: 4, everyMs: 25 }))
  const writing = await settle(() => second.reduce((n, s) => n + s.acks.size, 0) >= 100, ANSWER_MS)
  t.ok(writing, 'phase 2 is under way (100 acks) before the join')
  const late = await joinOn(t, n2, joiner, room, { afterSeq })
  const stillSending = second.some((s) => s.sent() < LATER_PER_SENDER)
  t.ok(stillSending, 'the join happened while nodes 1 and 3 were still sending')
  t.comment(`joined with afterSeq ${afterSeq}: lastSeq ${String(late.joined.lastSeq)}, ${second.reduce((n, s) => n + s.sent(), 0)} of phase 2 sent`)
  await Promise.all(second.map(async (s) => await s.finished))
  t.ok(await settle(() => second.every((s) => s.answered()), ANSWER_MS), 'every message of phase 2 is answered')
  t.strictSame(second.map((s) => s.acks.size), [LATER_PER_SENDER, LATER_PER_SENDER], 'every message of phase 2 is acked')
  const all = ackedSeqs([...first, ...second])
  const last = all[all.length - 1] ?? 0
  sameSeqs(t, all, range(1, last), `all acks together hold seqs 1..${last}, each once`)

  t.ok(await allDelivered([late.socket], room, range(afterSeq + 1, last), DELIVERY_MS), `the joiner on node 2 reaches seq ${last}`)
  sameSeqs(t, seqsOf(late.socket, room), range(afterSeq + 1, last), `the joiner sees ${afterSeq + 1}..${last}, each once, in order, across replay and live`)
  checkNoRejoin(t, late.socket, room, 'the joiner')

  t.ok(await allDelivered(everyone.map((s) => s.socket), room, all, DELIVERY_MS), 'every other socket has both phases')
  for (const s of everyone) {
    checkStream(t, s.socket, room, all, `after phase 2, ${label(s)}`)
    checkNoRejoin(t, s.socket, room, label(s))
  }
  const finalHistory = await readWholeHistory(n3.api, w3.token, room)
  sameSeqs(t, finalHistory.map((m) => m.seq), all, 'history (read on node 3) holds exactly the acked seqs of both phases')
})
