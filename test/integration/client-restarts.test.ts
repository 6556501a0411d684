// The JavaScript client (client/) in Node, with `ws`, through a restart of the real server
// (API.md, "The JavaScript client" and "Guarantees": a send "is sent again with the same
// clientMsgId, so it is stored once"; `message` is "each seq once, in seq order, across
// reconnects; the user's own messages too").
//
// Client A sends a burst into a room without awaiting each send; client B, another user, is
// joined there too. In the middle of the burst the server gets SIGTERM (it drains and exits 0) or
// SIGKILL, and a new process starts on the same port and the same data (embedded database in
// DATA_DIR, or the same Postgres database). Once every send has settled: each resolved with its
// own seq, history holds each body once, A and B each delivered every seq once, in order, and
// B's re-joins resumed after the last seq it had delivered. From the recorded frames: every send
// that got no ack on the first connection went out again with its clientMsgId, or came back in
// the re-join's replay (stored before the crash, not acked).
// The time from the new process's "listening" to the first message delivered after it is
// reported as a comment.
import t, { type Test } from 'tap'
import { ChatClient, type Ack } from '../../client/src/index.js'
import type { Backend } from '../helpers/backends.js'
import {
  createRoom, firstDifference, range, readWholeHistory, registerAndLogIn, spawnedServerEnv, tempDataDir, waitUntil,
  type Message
} from '../helpers/chat.js'
import { describeConnections, ranges, recordingWebSocket, type Connection } from '../helpers/chat-client.js'
import { freePort, waitForFreePort } from '../helpers/ports.js'
import { createClient } from '../helpers/http.js'
import { eachBackend } from '../helpers/server.js'
import { spawnServer, type ServerProcess } from '../helpers/spawn.js'

const SECRET = 'client-restarts-secret-that-is-at-least-32-bytes'
/** The burst: `SENDS` messages, `CHUNK` every `EVERY_MS`; the signal comes once `ACKS_BEFORE_SIGNAL` are acked. */
const SENDS = 300
const CHUNK = 3
const EVERY_MS = 5
const ACKS_BEFORE_SIGNAL = 80

interface Outcome { ack?: Ack, error?: Error & { code?: string }, at: number }
interface Delivered { message: Message, at: number }

/** A client with `token` on the server's port, with its connections recorded; closed at teardown. */
function startClient (t: Test, port: number, token: string): { client: ChatClient, connections: Connection[] } {
  const connections: Connection[] = []
  const client = new ChatClient({ url: `ws://127.0.0.1:${port}/ws`, token, WebSocket: recordingWebSocket(connections) })
  t.teardown(() => client.close())
  return { client, connections }
}

function listeningAt (server: ServerProcess): number {
  const line = server.logs.find((l) => l.msg.startsWith('listening on'))
  return typeof line?.time === 'number' ? line.time : Date.now()
}

/** Each delivered message is the stored one with that seq, and the seqs are history's, in order. */
function checkDelivered (t: Test, delivered: readonly Delivered[], history: readonly Message[], who: string): void {
  const seqs = delivered.map((d) => d.message.seq)
  const expected = history.map((m) => m.seq)
  const same = seqs.length === expected.length && seqs.every((s, i) => s === expected[i])
  t.ok(same, `${who} delivered every seq once, in order, no gaps (1..${expected.length})`,
    same ? {} : { diagnostic: true, difference: firstDifference(seqs, expected), delivered: ranges(seqs) })
  const wrong = delivered.filter((d) => {
    const stored = history[d.message.seq - 1]
    return stored === undefined || d.message.id !== stored.id || d.message.body !== stored.body || d.message.clientMsgId !== stored.clientMsgId || d.message.room !== stored.room
  })
  t.strictSame(wrong.slice(0, 3).map((d) => d.message), [], `${who}'s messages are the stored ones (id, body, clientMsgId, room)`)
}

/** Each re-join asks for what follows the last seq delivered before it (B's seqs come only as `message` frames). */
function checkResumes (t: Test, connections: readonly Connection[], room: string): void {
  let delivered = 0
  const wrong: string[] = []
  let rejoins = 0
  for (const c of connections) {
    for (const join of c.out.filter((f) => f.type === 'join' && f.room === room)) {
      if (c.n === 1) continue
      rejoins++
      if (join.afterSeq !== delivered) wrong.push(`connection #${c.n}: afterSeq ${String(join.afterSeq)}, last delivered ${delivered}`)
    }
    for (const f of c.in) if (f.type === 'message' && f.room === room) delivered = Math.max(delivered, f.seq as number)
  }
  t.ok(rejoins > 0, `B joined again after reconnecting (${rejoins} joins)`)
  t.strictSame(wrong, [], 'each re-join resumes after the last seq B delivered')
}

async function scenario (t: Test, backend: Backend, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  const dataDir = tempDataDir(t, 'chat-client-restarts-')
  const { url, drop } = await backend.provision()
  t.teardown(drop)
  const port = await freePort()
  const env = { ...spawnedServerEnv(dataDir, SECRET, url ?? ''), PORT: String(port) }

  const first = spawnServer(t, { env })
  t.equal(await first.listening(), port, `the server listens on the chosen port ${port}`)
  const api = createClient(`http://127.0.0.1:${port}`)
  const alice = await registerAndLogIn(api, 'restart_alice')
  const bob = await registerAndLogIn(api, 'restart_bob')
  const room = 'burst'
  await createRoom(api, alice, room)

  const t0 = Date.now()
  const a = startClient(t, port, alice.token)
  const b = startClient(t, port, bob.token)
  // With each state of A, how many sends had been made: those after the first drop waited in the outbox.
  let sent = 0
  const statesA: Array<{ state: string, at: number, sent: number }> = []
  a.client.on('state', (state: string) => statesA.push({ state, at: Date.now(), sent }))
  const roomA = a.client.room(room)
  const roomB = b.client.room(room)
  const ownA: Delivered[] = []
  const seenB: Delivered[] = []
  roomA.on('message', (message: Message) => ownA.push({ message, at: Date.now() }))
  roomB.on('message', (message: Message) => seenB.push({ message, at: Date.now() }))
  const frames = (): string => `client A:\n${describeConnections(a.connections, t0)}\nclient B:\n${describeConnections(b.connections, t0)}`
  await Promise.race([
    Promise.all([roomA.join(), roomB.join()]),
    new Promise((_resolve, reject) => setTimeout(() => reject(new Error(`joins not done after 10 s\n${frames()}`)), 10_000).unref())
  ])

  // The burst: CHUNK sends every EVERY_MS, none awaited, each settling into `outcomes`.
  const bodies = range(0, SENDS - 1).map((i) => `${signal} burst message ${i}`)
  const outcomes: Array<Outcome | undefined> = bodies.map(() => undefined)
  const timer = setInterval(() => {
    for (let k = 0; k < CHUNK && sent < SENDS; k++) {
      const i = sent++
      roomA.send(bodies[i]!).then(
        (ack: Ack) => { outcomes[i] = { ack, at: Date.now() } },
        (error: Error) => { outcomes[i] = { error, at: Date.now() } })
    }
    if (sent === SENDS) clearInterval(timer)
  }, EVERY_MS)
  t.teardown(() => clearInterval(timer))
  const acked = (): number => outcomes.filter((o) => o?.ack !== undefined).length
  await waitUntil(() => acked() >= ACKS_BEFORE_SIGNAL, 20_000, () => `${ACKS_BEFORE_SIGNAL} acks before the ${signal}\n${frames()}`)

  const sentAtSignal = sent
  const ackedAtSignal = acked()
  const exit = await first.stop(signal, 20_000)
  t.same(exit, signal === 'SIGTERM' ? { code: 0, signal: null } : { code: null, signal: 'SIGKILL' }, `the server ended by ${signal}`)
  const closeCode = signal === 'SIGTERM' ? 1001 : 1006
  await waitUntil(() => a.connections[0]?.closed != null && b.connections[0]?.closed != null, 5000, () => `both clients saw the socket close\n${frames()}`)
  t.strictSame([a.connections[0]?.closed?.code, b.connections[0]?.closed?.code], [closeCode, closeCode], `both sockets closed with ${closeCode}`)

  // Same port, same data: the client reconnects to the URL it has.
  await waitForFreePort(port, 10_000)
  const second = spawnServer(t, { env })
  t.equal(await second.listening(), port, 'the new server listens on the same port')
  const restartedAt = listeningAt(second)

  await waitUntil(() => sent === SENDS && outcomes.every((o) => o !== undefined), 45_000, () =>
    `every send settled (${sent} sent, ${acked()} acked, ${outcomes.filter((o) => o?.error !== undefined).length} rejected, ` +
    `pending: ${ranges(outcomes.flatMap((o, i) => o === undefined ? [i] : []))})\n${frames()}`)
  const rejected = outcomes.flatMap((o, i) => o?.error !== undefined ? [`#${i}: ${o.error.code ?? '?'} ${o.error.message}`] : [])
  t.strictSame(rejected.slice(0, 5), [], 'no send was rejected')
  const acks = outcomes.flatMap((o) => o?.ack !== undefined ? [o.ack] : [])
  t.equal(new Set(acks.map((ack) => ack.seq)).size, SENDS, `the ${SENDS} acks name ${SENDS} distinct seqs`)
  t.equal(new Set(acks.map((ack) => ack.clientMsgId)).size, SENDS, `and ${SENDS} distinct clientMsgIds`)
  // What the outbox had to carry over: sends made while A was disconnected, and sends that went out
  // on the first connection and got no ack there (in flight at the crash, or refused during the drain).
  const dropped = statesA.find((s, i) => s.state === 'connecting' && statesA.slice(0, i).some((p) => p.state === 'open'))
  const madeWhileDown = SENDS - (dropped?.sent ?? SENDS)
  t.ok(madeWhileDown > 0, `the burst went on while A was disconnected: ${madeWhileDown} sends waited in the outbox`)
  const firstConnection = a.connections[0]!
  const answered = new Set(firstConnection.in.filter((f) => f.type === 'ack').map((f) => f.clientMsgId as string))
  const unanswered = firstConnection.out.filter((f) => f.type === 'message' && !answered.has(f.clientMsgId as string)).map((f) => f.clientMsgId as string)
  const later = a.connections.slice(1)
  const sentLater = new Set(later.flatMap((c) => c.out.filter((f) => f.type === 'message').map((f) => f.clientMsgId as string)))
  // Stored before the crash but not acked: the re-join's replay brings it back, which settles the send as well as an ack.
  const replayed = new Set(later.flatMap((c) => c.in.filter((f) => f.type === 'message').map((f) => f.clientMsgId as string)))
  if (signal === 'SIGKILL') t.ok(unanswered.length > 0, `sends were in flight at the crash (${unanswered.length} sent on the first connection, never acked there)`)
  t.strictSame(unanswered.filter((id) => !sentLater.has(id) && !replayed.has(id)).slice(0, 5), [],
    `each of them (${unanswered.length}) was sent again with the same clientMsgId or came back stored in the replay`)

  const history = await readWholeHistory(api, alice.token, room)
  t.strictSame(history.map((m) => m.seq), range(1, history.length), `history's seqs are 1..${history.length}`)
  const counts = new Map<string, number>()
  for (const m of history) counts.set(m.body, (counts.get(m.body) ?? 0) + 1)
  const notOnce = bodies.filter((body) => counts.get(body) !== 1).map((body) => `${body} x${counts.get(body) ?? 0}`)
  t.strictSame(notOnce.slice(0, 10), [], 'history holds each body exactly once')
  t.equal(history.length, SENDS, `and nothing else (${history.length} messages)`)
  const mismatched = outcomes.flatMap((o, i) => {
    const stored = o?.ack === undefined ? undefined : history[o.ack.seq - 1]
    return stored !== undefined && stored.body === bodies[i] && stored.id === o?.ack?.id && stored.clientMsgId === o.ack.clientMsgId ? [] : [{ i, ack: o?.ack, stored }]
  })
  t.strictSame(mismatched.slice(0, 3), [], 'each ack names the stored message with its body (id, seq, clientMsgId)')

  await waitUntil(() => seenB.length >= SENDS && ownA.length >= SENDS, 15_000, () =>
    `B delivered ${seenB.length}, A delivered ${ownA.length} of ${SENDS}\n${frames()}`).catch((error: Error) => t.fail(error.message))
  checkDelivered(t, seenB, history, 'B')
  checkResumes(t, b.connections, room)
  checkDelivered(t, ownA, history, 'A (its own messages, once acked)')

  const firstToB = seenB.find((d) => d.at >= restartedAt)
  const firstAck = outcomes.filter((o) => o !== undefined && o.at >= restartedAt).sort((x, y) => x!.at - y!.at)[0]
  const reopened = statesA.find((s) => s.state === 'open' && s.at >= restartedAt)
  t.comment(`${backend.name}, ${signal}: at the signal ${sentAtSignal} sent and ${ackedAtSignal} acked; ${unanswered.length} unanswered on the first connection (${unanswered.filter((id) => replayed.has(id)).length} of them replayed as stored), ${madeWhileDown} made while down; ` +
    `A made ${a.connections.length} connection attempts, B ${b.connections.length}; after the new server's "listening": ` +
    `A open again in ${reopened === undefined ? '?' : reopened.at - restartedAt} ms, first ack to A in ${firstAck === undefined ? '?' : firstAck.at - restartedAt} ms, ` +
    `first message delivered to B in ${firstToB === undefined ? '?' : firstToB.at - restartedAt} ms`)
  if (!t.passing()) t.comment(frames())

  a.client.close()
  b.client.close()
  t.equal(statesA[statesA.length - 1]?.state, 'closed', 'close() ends in the closed state')
  t.same(await second.stop('SIGTERM', 15_000).catch((error: Error) => error.message), { code: 0, signal: null }, 'the new server stops cleanly')
}

// The two signals in parallel: each waits out a restart and the client's backoff, mostly idle.
t.jobs = 2
for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
  t.test(`${signal} in the middle of a client's burst, restart on the same port: each send stored once, every seq delivered once in order`, async (t) => {
    eachBackend(t, async (t, backend) => await scenario(t, backend, signal))
  })
}
