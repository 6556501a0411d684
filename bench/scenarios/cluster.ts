// Several nodes of ours as one server (API.md: with REDIS_URL, N processes on one Postgres behave
// as one): a run database on the user's Postgres, a redis-server of the run's own on a free port,
// and our server processes on consecutive ports, the first started first (it migrates and seeds).
// In one run it measures:
// 1. delivery latency to receivers on the sender's node against receivers on the other nodes, at
//    the same load (rooms of 10: the sender and 3 receivers on node 1, 3 receivers on each other);
// 2. server CPU per delivered frame, summed over the nodes, against one node without Redis at the
//    same socket count and rate (one room, sockets and senders spread over the nodes), and Redis's
//    own CPU per message;
// 3. what stopping Redis for a few seconds costs while senders on every node keep sending.
// Parts 1 and 3 parse every frame and check that each receiver got each acked message of its room
// once, in seq order; part 2 counts deliveries only, at fan-out rates.
import { performance } from 'node:perf_hooks'
import type { RecordableHistogram } from 'node:perf_hooks'
import { SMALL_ROOM_SIZE, WS_FANOUT_ROOM, wsSmallRoom } from '../fixture.js'
import { createMessageLoad, type LoadTarget } from '../load/message-load.js'
import { delay, latencyHistogram, percentiles, recordMs, round, startUsage, type Usage } from '../load/measure.js'
import { openSocket, type LoadSocket, type SocketEvents } from '../load/socket-client.js'
import type { ClusterProfile } from '../profiles.js'
import type { OutageFigures, ResultRow, SequenceCheck } from '../report/results.js'
import { freePorts, redisServerMissing, startRedis, type RedisProcess } from '../redis-process.js'
import { createRunDatabase, dropRunDatabase, eachLimited, startChatNode, type BenchServer, type BenchUser } from '../server-process.js'
import { closeAll, joinAll, thousands, type ScenarioContext, type StandaloneScenario } from './scenario.js'

/** The pacing timer, as the other scenarios' (load/message-load.ts). */
const TICK_MS = 2
const FILLER = 'a bench message padded to a typical chat length of about eighty bytes'
/** How long a node may take to answer `/ready` (its Redis connections up) after it printed ready. */
const READY_MS = 15_000

/** Why the cluster cannot run with these options, or null when it can. */
export function clusterNotRunnable (adminUrl: string): string | null {
  if (adminUrl === '') return 'needs DATABASE_URL (a Postgres admin URL): the nodes share one database, and the embedded one belongs to one process'
  return redisServerMissing()
}

export const cluster: StandaloneScenario = {
  name: 'cluster',
  async run (context) {
    const why = clusterNotRunnable(context.adminUrl)
    if (why !== null) throw new Error(why)
    const plan = context.profile.cluster
    for (const [part, sockets] of [['latency', plan.latency.sockets], ['outage', plan.outage.sockets]] as const) {
      if (sockets % SMALL_ROOM_SIZE !== 0) throw new Error(`cluster ${part}: ${sockets} sockets is not a whole number of rooms of ${SMALL_ROOM_SIZE}`)
    }
    // Parts 1 and 3 use users (and so small rooms) of their own: each room's seqs start at 1 for its check.
    const users = Math.max(plan.cpu.sockets, plan.latency.sockets + plan.outage.sockets)
    const started = performance.now()
    const database = await createRunDatabase(context.adminUrl)
    let redis: RedisProcess | undefined
    const nodes: BenchServer[] = []
    const stopCluster = async (): Promise<void> => {
      await Promise.all(nodes.map(async (node) => { await node.stop() }))
      await redis?.close()
    }
    try {
      context.progress('cluster: starting redis-server…')
      redis = await startRedis()
      const first = await freePorts(plan.nodes)
      const url = redis.url
      context.progress(`cluster: starting ${plan.nodes} nodes on ports ${first}-${first + plan.nodes - 1}, Redis on ${redis.port}…`)
      // The first node migrates the fresh database and seeds it; the others start once it is ready.
      nodes.push(await startChatNode({ users, database, port: first, seed: true, redisUrl: url }))
      const others = await Promise.allSettled(Array.from({ length: plan.nodes - 1 }, async (_, i) =>
        await startChatNode({ users, database, port: first + i + 1, seed: false, redisUrl: url })))
      // Every node that started is stopped below, also when another did not start.
      for (const other of others) if (other.status === 'fulfilled') nodes.push(other.value)
      for (const other of others) if (other.status === 'rejected') throw other.reason
      await Promise.all(nodes.map(async (node) => { await readyWithin(node, READY_MS) }))
      context.log(`  cluster: ${plan.nodes} nodes on ports ${first}-${first + plan.nodes - 1}, redis-server on port ${redis.port}`)

      await latencyStep(context, plan, nodes, redis)
      await cpuStep(context, plan, nodes, redis)
      await outageStep(context, plan, nodes, redis)
      context.progress('cluster: stopping the nodes and Redis…')
      await stopCluster()

      // The baseline: one node without Redis, on the same database, at the same load.
      context.progress('cluster: starting 1 node without Redis…')
      const single = await startChatNode({ users, database, port: await freePorts(1), seed: false, redisUrl: '' })
      try {
        await cpuStep(context, plan, [single], undefined)
      } finally {
        await single.stop()
      }
      context.log(`  cluster: took ${Math.round((performance.now() - started) / 1000)} s`)
    } finally {
      context.progress('cluster: stopping…')
      await stopCluster()
      await dropRunDatabase(database)
    }
  }
}

/** Polls GET /ready until 200: with Redis, the node answers 200 only once its connections are up. */
async function readyWithin (node: BenchServer, ms: number): Promise<void> {
  const deadline = performance.now() + ms
  for (;;) {
    const status = await fetch(`http://127.0.0.1:${node.port}/ready`).then((response) => response.status, () => 0)
    if (status === 200) return
    if (performance.now() > deadline) throw new Error(`the node on port ${node.port} did not answer /ready with 200 within ${ms / 1000} s (last: ${status})`)
    await delay(100)
  }
}

/** Opens one socket per user, user i on node `nodeOf(i)`, 100 upgrades at a time. */
async function openOn (nodes: readonly BenchServer[], users: readonly BenchUser[], nodeOf: (i: number) => number, events: SocketEvents,
  progress: (opened: number) => void): Promise<LoadSocket[]> {
  const sockets = new Array<LoadSocket>(users.length)
  let opened = 0
  try {
    await eachLimited(users, 100, async (user, i) => {
      sockets[i] = await openSocket(nodes[nodeOf(i)]!, user, i, events)
      if (++opened % 100 === 0) progress(opened)
    })
  } catch (error) {
    closeAll(sockets)
    throw error
  }
  return sockets
}

function target (nodes: readonly BenchServer[], redis: RedisProcess | undefined): LoadTarget {
  return {
    name: nodes.length > 1 ? 'chat-cluster' : 'chat',
    postgres: true,
    pid: nodes.map((node) => node.pid),
    redisPid: redis?.pid() ?? undefined,
    nodes: nodes.length,
    postgresBackends: nodes[0]!.postgresBackends
  }
}

const nodesLabel = (count: number): string => `${count} node${count === 1 ? '' : 's'}`

// ---- part 2: CPU per delivered frame, N nodes against 1 ----

async function cpuStep (context: ScenarioContext, plan: ClusterProfile, nodes: readonly BenchServer[], redis: RedisProcess | undefined): Promise<void> {
  const { sockets: count, rate, seconds } = plan.cpu
  const name = `cluster: fan-out on ${nodesLabel(nodes.length)}`
  const load = createMessageLoad()
  context.progress(`${name}: opening ${thousands(count)} sockets…`)
  const sockets = await openOn(nodes, nodes[0]!.users.slice(0, count), (i) => i % nodes.length, load.events,
    (opened) => { context.progress(`${name}: ${thousands(opened)} sockets open`) })
  try {
    context.progress(`${name}: joining…`)
    await joinAll(sockets, () => WS_FANOUT_ROOM)
    // Round-robin over every socket: the senders are spread over the nodes as evenly as the receivers.
    const row = await load.run(target(nodes, redis), sockets, () => WS_FANOUT_ROOM, {
      scenario: 'cluster-cpu',
      label: nodesLabel(nodes.length),
      rate,
      seconds,
      receivers: count - 1,
      warmupSeconds: context.profile.warmupSeconds,
      drainSeconds: context.profile.drainSeconds
    }, (line) => { context.progress(`${name}: ${line}`) })
    context.record({ ...row, sockets: count })
    if (load.closes.size > 0) throw new Error(`${load.closes.size} sockets closed during the step (codes ${[...new Set(load.closes.values())].join(', ')})`)
  } finally {
    closeAll(sockets)
  }
}

// ---- parts 1 and 3: every frame parsed, every receiver's seqs checked ----

/** A socket that receives its room's messages, and what it got: seq → arrival (performance.now()). */
interface Receiver {
  readonly socket: LoadSocket
  /** 0-based index of the node it is connected to. */
  readonly node: number
  readonly room: string
  readonly got: Map<number, number>
  /** Seqs it sent itself: it gets their `ack`, not a `message`. */
  readonly own: Set<number>
  last: number
  duplicated: number
  outOfOrder: number
}

/** One message sent: when, where from, and when acked with which seq. */
interface Sent {
  readonly at: number
  readonly node: number
  readonly room: string
  /** Warm-up messages are checked but not timed. */
  readonly timed: boolean
  ackedAt?: number
  seq?: number
}

interface AckedMessage { readonly seq: number, readonly ackedAt: number, readonly sentAt: number, readonly node: number }

/**
 * The socket events of a step whose bodies are `<sent at>|<t or w>|<sender's node>|…`: delivery
 * latency per class of receiver, acks per room, and each receiver's seqs in arrival order.
 */
function createLedger (classify: (receiver: Receiver, senderNode: number) => string) {
  const receivers = new Map<number, Receiver>()
  const sent = new Map<LoadSocket, Sent[]>()
  /** Per room, seq → the acked message. */
  const acked = new Map<string, Map<number, AckedMessage>>()
  const delivery = new Map<string, RecordableHistogram>()
  const ack = latencyHistogram()
  const errors = new Map<string, number>()
  const closes = new Map<number, number>()
  let sentCount = 0
  let ackedCount = 0
  let ackedTimed = 0
  let failedCount = 0
  let deliveredCount = 0

  const events: SocketEvents = {
    acked (socket, n, now, frame) {
      const message = sent.get(socket)?.[n]
      if (message === undefined || message.ackedAt !== undefined || frame === undefined) return
      message.ackedAt = now
      message.seq = frame.seq
      ackedCount++
      if (message.timed) {
        ackedTimed++
        recordMs(ack, now - message.at)
      }
      let room = acked.get(message.room)
      if (room === undefined) acked.set(message.room, room = new Map<number, AckedMessage>())
      room.set(frame.seq, { seq: frame.seq, ackedAt: now, sentAt: message.at, node: message.node })
      receivers.get(socket.index)?.own.add(frame.seq)
    },
    delivered () {},
    message (socket, message, now) {
      const receiver = receivers.get(socket.index)
      if (receiver === undefined || message.room !== receiver.room) return
      deliveredCount++
      const [at, timed, node] = message.body.split('|', 3)
      if (receiver.got.has(message.seq)) {
        receiver.duplicated++
        return
      }
      receiver.got.set(message.seq, now)
      if (message.seq < receiver.last) receiver.outOfOrder++
      else receiver.last = message.seq
      if (timed !== 't') return
      const kind = classify(receiver, Number(node))
      let histogram = delivery.get(kind)
      if (histogram === undefined) delivery.set(kind, histogram = latencyHistogram())
      recordMs(histogram, now - Number(at))
    },
    failed (_socket, _n, code) {
      failedCount++
      errors.set(code, (errors.get(code) ?? 0) + 1)
    },
    closed (socket, code) { closes.set(socket.index, code) }
  }

  /** Due to `receiver`: its room's acked messages it did not send (those `filter` keeps). */
  const due = (receiver: Receiver, filter: (message: AckedMessage) => boolean = () => true): AckedMessage[] =>
    [...acked.get(receiver.room)?.values() ?? []].filter((message) => !receiver.own.has(message.seq) && filter(message))

  return {
    events,
    receivers,
    acked,
    delivery,
    ack,
    errors,
    closes,
    counts: () => ({ sent: sentCount, acked: ackedCount, ackedTimed, failed: failedCount, delivered: deliveredCount }),
    /** Messages sent in [from, to), acked or not. */
    sentBetween (from: number, to: number): number {
      let count = 0
      for (const list of sent.values()) for (const message of list) if (message.at >= from && message.at < to) count++
      return count
    },
    due,
    addReceiver (socket: LoadSocket, node: number, room: string): void {
      receivers.set(socket.index, { socket, node, room, got: new Map(), own: new Set(), last: 0, duplicated: 0, outOfOrder: 0 })
    },
    /** Sends message n of `socket`; the body carries the send time, whether it is timed, and the sender's node. */
    send (socket: LoadSocket, node: number, room: string, timed: boolean): Sent {
      let list = sent.get(socket)
      if (list === undefined) sent.set(socket, list = [])
      const at = performance.now()
      const message: Sent = { at, node, room, timed }
      list.push(message)
      // n is the ref: 0-based index in this socket's list.
      socket.send(room, list.length - 1, `${at.toFixed(3)}|${timed ? 't' : 'w'}|${node}|${FILLER}`)
      sentCount++
      return message
    },
    /** Every message sent was answered, and every receiver holds every acked message due to it. */
    settled (): boolean {
      if (ackedCount + failedCount < sentCount) return false
      for (const receiver of receivers.values()) {
        if (closes.has(receiver.socket.index)) continue
        for (const message of due(receiver)) if (!receiver.got.has(message.seq)) return false
      }
      return true
    },
    /** The seqs check over the receivers `which` keeps. */
    check (which: (receiver: Receiver) => boolean = () => true): SequenceCheck {
      let count = 0
      let expected = 0
      let lost = 0
      let duplicated = 0
      let outOfOrder = 0
      let closed = 0
      for (const receiver of receivers.values()) {
        if (!which(receiver)) continue
        count++
        const wanted = due(receiver)
        expected += wanted.length
        lost += wanted.filter((message) => !receiver.got.has(message.seq)).length
        duplicated += receiver.duplicated + [...receiver.own].filter((seq) => receiver.got.has(seq)).length
        outOfOrder += receiver.outOfOrder
        if (closes.has(receiver.socket.index)) closed++
      }
      return { receivers: count, expected, lost, duplicated, outOfOrder, closed }
    }
  }
}

type Ledger = ReturnType<typeof createLedger>

/**
 * Sends `rate` messages/s for `seconds`, round-robin over `senders` (each to its own room), as
 * timed messages or warm-up; resolves after the last send with the seconds it took.
 */
async function pace (ledger: Ledger, senders: ReadonlyArray<{ socket: LoadSocket, node: number, room: string }>, rate: number, seconds: number, timed: boolean): Promise<number> {
  const total = Math.round(rate * seconds)
  const started = performance.now()
  let sent = 0
  let next = 0
  while (sent < total) {
    const due = Math.min(total, Math.floor(rate * (performance.now() - started) / 1000)) - sent
    for (let i = 0; i < due; i++) {
      let sender = senders[next++ % senders.length]!
      for (let tries = 0; !sender.socket.open && tries < senders.length; tries++) sender = senders[next++ % senders.length]!
      if (!sender.socket.open) throw new Error('every sending socket has closed')
      ledger.send(sender.socket, sender.node, sender.room, timed)
      sent++
    }
    await delay(TICK_MS)
  }
  return (performance.now() - started) / 1000
}

async function settle (ledger: Ledger, seconds: number): Promise<boolean> {
  const deadline = performance.now() + seconds * 1000
  while (performance.now() < deadline) {
    if (ledger.settled()) return true
    await delay(20)
  }
  return ledger.settled()
}

/** A ticker for the progress line: sent, acked and delivered per second. */
function ticker (ledger: Ledger, label: () => string, progress: (line: string) => void): () => void {
  let last = { at: performance.now(), ...ledger.counts() }
  const timer = setInterval(() => {
    const now = { at: performance.now(), ...ledger.counts() }
    const s = (now.at - last.at) / 1000
    progress(`${label()}: sent ${Math.round((now.sent - last.sent) / s)}/s, acked ${Math.round((now.acked - last.acked) / s)}/s, delivered ${Math.round((now.delivered - last.delivered) / s)}/s`)
    last = now
  }, 1000)
  return () => { clearInterval(timer) }
}

function sequenceFailures (check: SequenceCheck): number {
  return check.lost + check.duplicated + check.outOfOrder + check.closed
}

function sequenceNotes (check: SequenceCheck, what: string): string[] {
  const notes: string[] = []
  if (check.lost > 0) notes.push(`${what}: ${thousands(check.lost)} acked messages never delivered`)
  if (check.duplicated > 0) notes.push(`${what}: ${thousands(check.duplicated)} messages delivered twice`)
  if (check.outOfOrder > 0) notes.push(`${what}: ${thousands(check.outOfOrder)} messages out of seq order`)
  if (check.closed > 0) notes.push(`${what}: ${check.closed} sockets closed by the server`)
  return notes
}

function answerNotes (ledger: Ledger, settleSeconds: number): { unanswered: number, notes: string[] } {
  const { sent, acked, failed } = ledger.counts()
  const unanswered = sent - acked - failed
  const notes: string[] = []
  if (unanswered > 0) notes.push(`${unanswered} messages not acked within ${settleSeconds} s of the last send`)
  for (const [code, count] of ledger.errors) notes.push(`${count} × error ${code}`)
  return { unanswered, notes }
}

function usageFields (used: Usage, sendSeconds: number, seconds: number): Pick<ResultRow, 'serverCpuPercent' | 'serverKernelShare' | 'generatorCpuPercent' | 'generatorBound'> & { notes: string[] } {
  const notes = [...used.notes]
  let generatorBound = used.generatorBound
  if (sendSeconds > seconds * 1.05) {
    generatorBound = true
    notes.push(`the generator took ${sendSeconds.toFixed(1)} s to send ${seconds} s of messages`)
  }
  return { serverCpuPercent: used.serverCpuPercent, serverKernelShare: used.serverKernelShare, generatorCpuPercent: used.generatorCpuPercent, generatorBound, notes }
}

// ---- part 1: same-node against cross-node delivery ----

/** Where position p (0-9) of a room of 10 sits in part 1: 0 sends on node 1; the 9 receivers are split evenly over the nodes. */
function latencyNode (position: number, nodes: number): number {
  return position === 0 ? 0 : Math.floor((position - 1) * nodes / (SMALL_ROOM_SIZE - 1))
}

async function latencyStep (context: ScenarioContext, plan: ClusterProfile, nodes: readonly BenchServer[], redis: RedisProcess): Promise<void> {
  const { sockets: count, rate, seconds } = plan.latency
  const name = `cluster: same-node vs cross-node on ${nodesLabel(nodes.length)}`
  const ledger = createLedger((receiver, senderNode) => receiver.node === senderNode ? 'same' : 'cross')
  const users = nodes[0]!.users.slice(0, count)
  const nodeOf = (i: number): number => latencyNode(i % SMALL_ROOM_SIZE, nodes.length)
  context.progress(`${name}: opening ${thousands(count)} sockets…`)
  const sockets = await openOn(nodes, users, nodeOf, ledger.events, (opened) => { context.progress(`${name}: ${thousands(opened)} sockets open`) })
  try {
    context.progress(`${name}: joining…`)
    await joinAll(sockets, (socket) => wsSmallRoom(socket.index))
    const senders = sockets.filter((socket) => socket.index % SMALL_ROOM_SIZE === 0).map((socket) => ({ socket, node: 0, room: wsSmallRoom(socket.index) }))
    for (const socket of sockets) if (socket.index % SMALL_ROOM_SIZE !== 0) ledger.addReceiver(socket, nodeOf(socket.index), wsSmallRoom(socket.index))
    let phase = 'warming up'
    const stopTicker = ticker(ledger, () => `${name}: ${phase}`, context.progress)
    let sendSeconds: number
    let used: Usage
    try {
      if (context.profile.warmupSeconds > 0) await pace(ledger, senders, rate, context.profile.warmupSeconds, false)
      phase = `${seconds} s at ${thousands(rate)} msg/s`
      const usage = await startUsage({ pid: nodes.map((node) => node.pid), redisPid: redis.pid() ?? undefined, postgresBackends: nodes[0]!.postgresBackends })
      sendSeconds = await pace(ledger, senders, rate, seconds, true)
      phase = 'waiting for the last deliveries'
      await settle(ledger, context.profile.drainSeconds)
      used = await usage.end()
    } finally {
      stopTicker()
    }
    const { ackedTimed: acked } = ledger.counts()
    const { unanswered, notes } = answerNotes(ledger, context.profile.drainSeconds)
    const usage = usageFields(used, sendSeconds, seconds)
    for (const kind of ['same', 'cross'] as const) {
      const check = ledger.check((receiver) => (receiver.node === 0) === (kind === 'same'))
      const histogram = ledger.delivery.get(kind) ?? latencyHistogram()
      const first = kind === 'same'
      context.record({
        scenario: 'cluster-latency',
        server: 'chat-cluster',
        step: kind === 'same' ? 'same node (node 1)' : `cross node (nodes 2-${nodes.length})`,
        offered: rate,
        delivery: percentiles(histogram),
        ack: percentiles(ledger.ack),
        messagesPerSecond: round(acked / sendSeconds),
        deliveriesPerSecond: round(histogram.count / sendSeconds),
        ...(acked > 0 ? { cpuUsPerMessage: round(1e6 * used.serverCpuSeconds / acked), redisCpuUsPerMessage: round(1e6 * used.redisCpuSeconds / acked), databaseCpuUsPerMessage: round(1e6 * used.databaseCpuSeconds / acked) } : {}),
        nodes: nodes.length,
        sockets: count,
        sequence: check,
        ...usage,
        // The step's own figures (CPU, answers) are the same for both rows: noted once.
        failures: sequenceFailures(check) + (first ? unanswered + ledger.counts().failed : 0),
        notes: [...(first ? [...usage.notes, ...notes] : []), ...sequenceNotes(check, `${kind}-node receivers`)]
      })
    }
  } finally {
    closeAll(sockets)
  }
}

// ---- part 3: a Redis outage ----

async function outageStep (context: ScenarioContext, plan: ClusterProfile, nodes: readonly BenchServer[], redis: RedisProcess): Promise<void> {
  const { sockets: count, rate, beforeSeconds, outageSeconds, afterSeconds } = plan.outage
  const name = `cluster: Redis outage on ${nodesLabel(nodes.length)}`
  const ledger = createLedger(() => 'any')
  // Users after part 1's, so these rooms are fresh: each starts at seq 1.
  const offset = plan.latency.sockets
  const users = nodes[0]!.users.slice(offset, offset + count)
  const nodeOf = (i: number): number => i % SMALL_ROOM_SIZE % nodes.length
  context.progress(`${name}: opening ${thousands(count)} sockets…`)
  const sockets = await openOn(nodes, users, nodeOf, ledger.events, (opened) => { context.progress(`${name}: ${thousands(opened)} sockets open`) })
  const roomOf = (socket: LoadSocket): string => wsSmallRoom(offset + socket.index)
  try {
    context.progress(`${name}: joining…`)
    await joinAll(sockets, roomOf)
    for (const socket of sockets) ledger.addReceiver(socket, nodeOf(socket.index), roomOf(socket))
    // In every room one sender per node (positions 0..nodes-1 sit on nodes 1..N).
    const senders = sockets.filter((socket) => socket.index % SMALL_ROOM_SIZE < nodes.length).map((socket) => ({ socket, node: nodeOf(socket.index), room: roomOf(socket) }))
    const ackOutage = latencyHistogram()
    let phase = `${beforeSeconds} s with Redis`
    const stopTicker = ticker(ledger, () => `${name}: ${phase}`, context.progress)
    const total = beforeSeconds + outageSeconds + afterSeconds
    let down = 0
    let back = 0
    let sendSeconds: number
    let used: Usage
    try {
      const usage = await startUsage({ pid: nodes.map((node) => node.pid), postgresBackends: nodes[0]!.postgresBackends })
      const sending = pace(ledger, senders, rate, total, true)
      // Stopped, then started again on the same port, while the senders keep going.
      const outage = (async () => {
        await delay(beforeSeconds * 1000)
        phase = `Redis stopped for ${outageSeconds} s`
        down = performance.now()
        await redis.stop()
        await delay(Math.max(0, down + outageSeconds * 1000 - performance.now()))
        phase = 'starting Redis again'
        await redis.start()
        back = performance.now()
        phase = 'Redis back'
      })()
      const [seconds] = await Promise.all([sending, outage])
      sendSeconds = seconds
      phase = 'waiting until every receiver holds every acked message'
      await settle(ledger, plan.settleSeconds)
      used = await usage.end()
    } finally {
      stopTicker()
    }

    // What was sent and acked while Redis was away, and how it reached the other nodes.
    let ackedDuring = 0
    for (const room of ledger.acked.values()) {
      for (const message of room.values()) {
        if (message.sentAt >= down && message.sentAt < back) recordMs(ackOutage, message.ackedAt - message.sentAt)
        if (message.ackedAt >= down && message.ackedAt < back) ackedDuring++
      }
    }
    const { sent } = ledger.counts()
    const sentDuring = ledger.sentBetween(down, back)
    let crossNodeDue = 0
    const crossNodeDelivery = latencyHistogram()
    let deliveredDuring = 0
    let deliveredAfter = 0
    const afterPerReceiver: number[] = []
    let repairEnd = back
    let complete = true
    for (const receiver of ledger.receivers.values()) {
      const remote = ledger.due(receiver, (message) => message.node !== receiver.node && message.sentAt >= down && message.sentAt < back)
      let after = 0
      for (const message of remote) {
        const arrived = receiver.got.get(message.seq)
        if (arrived === undefined) continue
        recordMs(crossNodeDelivery, arrived - message.sentAt)
        if (arrived < back) deliveredDuring++
        else after++
      }
      crossNodeDue += remote.length
      deliveredAfter += after
      if (remote.length > 0) afterPerReceiver.push(after)
      // Every message acked before Redis was back, in this receiver's hands: when?
      for (const message of ledger.due(receiver, (m) => m.ackedAt < back)) {
        const arrived = receiver.got.get(message.seq)
        if (arrived === undefined) complete = false
        else repairEnd = Math.max(repairEnd, arrived)
      }
    }
    const figures: OutageFigures = {
      seconds: round((back - down) / 1000),
      sentDuring,
      ackedDuring,
      ackDuring: percentiles(ackOutage),
      crossNodeDue,
      deliveredDuring,
      deliveredAfter,
      crossNodeDelivery: percentiles(crossNodeDelivery),
      perReceiverAfter: {
        receivers: afterPerReceiver.length,
        mean: afterPerReceiver.length === 0 ? 0 : round(afterPerReceiver.reduce((a, b) => a + b, 0) / afterPerReceiver.length),
        max: Math.max(0, ...afterPerReceiver)
      },
      repairMs: complete ? Math.round(repairEnd - back) : null
    }
    const check = ledger.check()
    const { acked, failed } = ledger.counts()
    const { unanswered, notes } = answerNotes(ledger, plan.settleSeconds)
    const usage = usageFields(used, sendSeconds, total)
    const all = latencyHistogram()
    for (const histogram of ledger.delivery.values()) all.add(histogram)
    context.record({
      scenario: 'cluster-outage',
      server: 'chat-cluster',
      step: `Redis stopped ${outageSeconds} s`,
      offered: rate,
      delivery: percentiles(all),
      ack: percentiles(ledger.ack),
      messagesPerSecond: round(acked / sendSeconds),
      deliveriesPerSecond: round(all.count / sendSeconds),
      nodes: nodes.length,
      sockets: count,
      sequence: check,
      outage: figures,
      ...usage,
      failures: sequenceFailures(check) + unanswered + failed,
      notes: [
        `${thousands(sent)} messages over ${total} s, Redis down for ${figures.seconds} s of them`,
        ...usage.notes,
        ...notes,
        ...(complete ? [] : ['some receiver never got every message acked before Redis was back']),
        ...sequenceNotes(check, 'receivers')
      ]
    })
  } finally {
    closeAll(sockets)
  }
}
