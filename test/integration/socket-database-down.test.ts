// Fault injection on the WebSocket message path (API.md, "WebSocket /ws" and "Guarantees"):
// - Postgres unreachable (a TCP proxy in front of it, cut and restored): `message` frames are
//   answered `error unavailable` with their ref, nothing reaches the room, the socket stays open,
//   and re-sending the same clientMsgIds after recovery stores each exactly once, gapless.
// - A write that is in flight when the connection drops (the insert held on a row lock, then the
//   proxy cut): the sender is told `unavailable`, which API.md defines as "neither stored nor
//   sent"; the test checks that it really was not stored, and that the other socket in the room
//   still sees every seq once, in order, without a gap (API.md, `join`).
// - The write queue full (WRITE_QUEUE_LIMIT, any backend, the insert held back by a Kysely plugin):
//   the excess is answered `unavailable` at once and is neither stored nor sent.
import pg from 'pg'
import t, { type Test } from 'tap'
import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely'
import { createDatabase } from '../../db/create-db.js'
import type { OpenDatabase } from '../../plugins/infra/db.js'
import type { Message } from '../../src/protocol/resources.js'
import { backends, type Backend } from '../helpers/backends.js'
import { delay, HIGH_FRAME_RATE, range, readWholeHistory, type Account } from '../helpers/chat.js'
import type { ApiClient } from '../helpers/http.js'
import { eachBackend, startTestServer } from '../helpers/server.js'
import { connect, drainUntilPong, type ConnectedSocket, type Frame, type TestSocket } from '../helpers/socket.js'
import { proxyUrl, type TcpProxy } from '../helpers/tcp-proxy.js'

/** The pool waits 5 s for a connection; an answer must come well within that plus a margin. */
const UNAVAILABLE_WITHIN_MS = 8000

const postgres = backends().run.find((b) => b.name === 'postgres')
const skipPostgres = postgres === undefined ? 'postgres: TEST_DATABASE_URL is not set' : false

let refs = 0

/** Sends a message frame with a fresh ref; returns the ref. */
function sendMessage (s: TestSocket, room: string, clientMsgId: string, body = `body of ${clientMsgId}`): string {
  const ref = `m${++refs}`
  s.send({ type: 'message', room, body, clientMsgId, ref })
  return ref
}

/** Takes the reply to `ref` (ack or error). */
async function reply (s: TestSocket, ref: string, ms = UNAVAILABLE_WITHIN_MS): Promise<Frame> {
  return await s.next((f) => f.ref === ref, ms)
}

async function join (t: Test, s: ConnectedSocket, room: string): Promise<void> {
  const joined = await s.request({ type: 'join', room })
  t.equal(joined.type, 'joined', `joined ${room}: ${JSON.stringify(joined)}`)
}

/** seq 1..N without gaps or repeats, and each clientMsgId at most once. */
function checkGapless (t: Test, messages: Message[], label: string): void {
  t.strictSame(messages.map((m) => m.seq), range(1, messages.length), `${label}: seq is 1..${messages.length}, gapless`)
  const ids = messages.map((m) => m.clientMsgId).filter((id) => id !== null)
  t.equal(new Set(ids).size, ids.length, `${label}: no clientMsgId stored twice`)
}

/**
 * Re-sends each clientMsgId until it is acked (an `unavailable` waits and tries again); any other
 * answer fails. Returns the acks by clientMsgId.
 */
async function resendUntilAcked (t: Test, s: TestSocket, room: string, clientMsgIds: string[], ms = 12_000): Promise<Map<string, Frame>> {
  const acks = new Map<string, Frame>()
  const deadline = Date.now() + ms
  let waiting = [...clientMsgIds]
  while (waiting.length > 0) {
    if (Date.now() > deadline) {
      t.fail(`still not acked ${ms} ms after recovery: ${waiting.join(', ')}`)
      return acks
    }
    const sent = waiting.map((id) => ({ id, ref: sendMessage(s, room, id) }))
    waiting = []
    for (const { id, ref } of sent) {
      const answer = await reply(s, ref)
      if (answer.type === 'ack') acks.set(id, answer)
      else if (answer.type === 'error' && answer.code === 'unavailable') waiting.push(id)
      else t.fail(`unexpected answer to ${id}: ${JSON.stringify(answer)}`)
    }
    if (waiting.length > 0) await delay(250)
  }
  return acks
}

/**
 * A server on a fresh Postgres database that it reaches through a TCP proxy the test can cut;
 * alice (socket a) and bob (socket b) joined to general, with b's pending frames taken.
 */
async function behindProxy (t: Test): Promise<{ url: string, proxy: TcpProxy, api: ApiClient, alice: Account, a: ConnectedSocket, b: ConnectedSocket }> {
  const { url, drop } = await postgres!.provision()
  t.teardown(drop)
  const { proxy, url: proxied } = await proxyUrl(url!, 5432)
  t.teardown(async () => await proxy.close())
  const { api, baseUrl } = await startTestServer(t, { name: 'postgres', provision: async () => ({ url: proxied, drop: async () => {} }) }, { env: HIGH_FRAME_RATE })

  const alice = await api.user('sdd_alice')
  const bob = await api.user('sdd_bob')
  const a = await connect(baseUrl, alice.token)
  const b = await connect(baseUrl, bob.token)
  t.teardown(async () => { await a.close(); await b.close() })
  await join(t, a, 'general')
  await join(t, b, 'general')
  await drainUntilPong(b)
  return { url: url!, proxy, api, alice, a, b }
}

t.test('Postgres unreachable: messages are refused with unavailable and stored exactly once after recovery', { skip: skipPostgres }, async (t) => {
  const { proxy, api, alice, a, b } = await behindProxy(t)

  // Before the outage: two messages go through.
  const before = await resendUntilAcked(t, a, 'general', ['pre-1', 'pre-2'], 5000)
  t.equal(before.size, 2, 'acked before the outage')
  t.strictSame((await drainUntilPong(b)).filter((f) => f.type === 'message').map((f) => f.clientMsgId), ['pre-1', 'pre-2'], 'bob saw them live')

  proxy.cut()
  // Let the server's pool see its connections close first. A write started on a connection whose
  // end has not been read yet is sent into a dead socket: that outcome is uncertain, and rightly
  // waits for the database instead (the in-flight test below).
  await delay(100)
  const down = ['down-1', 'down-2', 'down-3', 'down-4', 'down-5']
  const started = performance.now()
  const sent = down.map((id) => ({ id, ref: sendMessage(a, 'general', id) }))
  for (const { id, ref } of sent) {
    const answer = await reply(a, ref).catch((error: Error) => ({ type: 'timeout', message: error.message }) as Frame)
    t.match(answer, { type: 'error', code: 'unavailable', ref }, `${id}: error unavailable with its ref`)
    t.type(answer.message, 'string', `${id}: the error has a message`)
  }
  const elapsed = performance.now() - started
  t.ok(elapsed < UNAVAILABLE_WITHIN_MS, `all five answered within ${UNAVAILABLE_WITHIN_MS} ms (took ${elapsed.toFixed(0)} ms)`)
  t.equal(a.pending().filter((f) => f.type === 'ack').length, 0, 'no ack while the database is down')

  // After the 1 s cooldown the writer tries the database again: still down, still unavailable.
  await delay(1200)
  const probe = await reply(a, sendMessage(a, 'general', 'down-1')).catch((error: Error) => ({ type: 'timeout', message: error.message }) as Frame)
  t.match(probe, { type: 'error', code: 'unavailable' }, 'after the cooldown, a new attempt is made and refused again')

  t.equal(a.ws.readyState, a.ws.OPEN, 'the sender\'s socket stays open')
  t.match(await a.request({ type: 'ping' }), { type: 'pong' }, 'and keeps answering')
  t.strictSame((await drainUntilPong(b)).filter((f) => f.type === 'message'), [], 'nothing was published to the other socket while down')

  proxy.restore()
  const acks = await resendUntilAcked(t, a, 'general', down)
  t.equal(acks.size, down.length, 'every clientMsgId is acked once the database is back')
  const live = (await drainUntilPong(b)).filter((f) => f.type === 'message')
  t.strictSame(live.map((f) => f.clientMsgId), down, 'bob saw each retried message once, in order')
  for (const frame of live) {
    t.match(frame, { id: acks.get(frame.clientMsgId)?.id, seq: acks.get(frame.clientMsgId)?.seq }, `${String(frame.clientMsgId)}: the event matches the ack`)
  }

  // Again: a repeat is answered with the original ack and nothing is sent twice.
  const repeat = await resendUntilAcked(t, a, 'general', down, 5000)
  for (const id of down) t.match(repeat.get(id), { id: acks.get(id)?.id, seq: acks.get(id)?.seq }, `${id}: a repeat gets the original ack`)
  t.strictSame((await drainUntilPong(b)).filter((f) => f.type === 'message'), [], 'repeats are not published again')

  const stored = await readWholeHistory(api, alice.token, 'general')
  checkGapless(t, stored, 'history')
  const everyAck = new Map([...before, ...acks])
  t.strictSame(stored.map((m) => m.clientMsgId), ['pre-1', 'pre-2', ...down], 'history holds exactly the acked messages')
  for (const m of stored) {
    const ack = everyAck.get(m.clientMsgId ?? '')
    t.match(m, { id: ack?.id, seq: ack?.seq, userId: alice.id }, `${String(m.clientMsgId)}: stored as acked`)
  }
})

t.test('a write cut off mid-statement may have committed: no `unavailable`; written again once the database is back, announced once, no gap', { skip: skipPostgres }, async (t) => {
  const { url, proxy, api, alice, a, b } = await behindProxy(t)
  t.equal((await resendUntilAcked(t, a, 'general', ['first'], 5000)).size, 1, 'a first message goes through')
  await drainUntilPong(b)

  // A second connection, not through the proxy, locks the room row: the server's insert (which
  // bumps rooms.last_seq) waits on it inside Postgres.
  const locker = new pg.Client({ connectionString: url })
  await locker.connect()
  t.teardown(async () => await locker.end().catch(() => {}))
  await locker.query('begin')
  await locker.query('select last_seq from rooms where id = $1 for update', ['general'])
  const ref = sendMessage(a, 'general', 'in-flight')
  const waiting = async (): Promise<boolean> => {
    // pg_stat_activity keeps only the first 1 KiB of a statement: match the group commit by its opening.
    const res = await locker.query(`select count(*)::int as n from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid() and wait_event_type = 'Lock' and query like '%chat_insert_messages(%'`)
    return (res.rows[0] as { n: number }).n > 0
  }
  const deadline = Date.now() + 5000
  while (!(await waiting()) && Date.now() < deadline) await delay(20)
  t.ok(await waiting(), 'the insert is waiting on the row lock inside Postgres')

  // The connection goes away mid-statement; then the lock is released, so Postgres finishes it.
  proxy.cut()
  await locker.query('commit')
  await delay(500)
  const direct = await locker.query('select id::text, seq::int from messages where client_msg_id = $1', ['in-flight'])
  t.strictSame(direct.rows.map((r) => (r as { seq: number }).seq), [2], 'the cut-off statement committed in Postgres')
  const early = await reply(a, ref, 1500).catch(() => null)
  t.equal(early, null, 'the sender is not told `unavailable` (or anything) while the outcome is unknown')

  proxy.restore()
  const ack = await reply(a, ref, 10_000)
  t.match(ack, { type: 'ack', ref, seq: 2, id: (direct.rows[0] as { id: string }).id, clientMsgId: 'in-flight' }, 'once the database answers, the write is confirmed with the stored message')
  const acks = await resendUntilAcked(t, a, 'general', ['after'])
  t.equal(acks.size, 1, 'a new message is acked')
  const live = (await drainUntilPong(b)).filter((f) => f.type === 'message')
  t.strictSame(live.map((f) => f.seq), [2, 3],
    `bob sees every seq once, in order, without a gap (API.md, join); he saw ${JSON.stringify(live.map((f) => ({ seq: f.seq, clientMsgId: f.clientMsgId })))}`)
  const stored = await readWholeHistory(api, alice.token, 'general')
  checkGapless(t, stored, 'history')
  t.strictSame(stored.map((m) => m.clientMsgId), ['first', 'in-flight', 'after'], 'each message stored once')
})

/** Holds the results of the group commit's statements (`chat_insert_messages`) until released (after they committed). */
interface Gate {
  readonly open: OpenDatabase
  hold (): void
  release (): void
  /** Resolves when an insert has run and is being held. */
  held (): Promise<void>
}

function gatedDatabase (): Gate {
  const inserts = new WeakSet<object>()
  let gate: Promise<void> | null = null
  let openGate: () => void = () => {}
  let heldWaiters: Array<() => void> = []
  let heldCount = 0
  const isInsert = (node: RootOperationNode): boolean => {
    if (node.kind !== 'RawNode') return false
    return (node as unknown as { sqlFragments: readonly string[] }).sqlFragments.join('?').includes('from chat_insert_messages(')
  }
  const plugin: KyselyPlugin = {
    transformQuery (args: PluginTransformQueryArgs): RootOperationNode {
      if (isInsert(args.node)) inserts.add(args.queryId)
      return args.node
    },
    async transformResult (args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
      if (inserts.has(args.queryId) && gate !== null) {
        heldCount++
        for (const wake of heldWaiters) wake()
        heldWaiters = []
        await gate
      }
      return args.result
    }
  }
  return {
    open: async (options) => {
      const handle = await createDatabase(options)
      return { ...handle, db: handle.db.withPlugin(plugin) }
    },
    hold () {
      heldCount = 0
      gate = new Promise((resolve) => { openGate = resolve })
    },
    release () {
      gate = null
      openGate()
    },
    async held () {
      if (heldCount > 0) return
      await new Promise<void>((resolve) => heldWaiters.push(resolve))
    }
  }
}

t.test('write queue full: the excess is refused with unavailable, neither stored nor sent', async (t) => {
  eachBackend(t, async (t: Test, backend: Backend) => {
    const gate = gatedDatabase()
    const { api, baseUrl } = await startTestServer(t, backend, { env: { ...HIGH_FRAME_RATE, WRITE_QUEUE_LIMIT: '5' }, openDatabase: gate.open })
    const alice = await api.user('sdq_alice')
    const bob = await api.user('sdq_bob')
    const a = await connect(baseUrl, alice.token)
    const b = await connect(baseUrl, bob.token)
    t.teardown(async () => { gate.release(); await a.close(); await b.close() })
    await join(t, a, 'general')
    await join(t, b, 'general')
    await drainUntilPong(b)

    // One write in flight and held; five wait behind it (the limit); three more do not fit.
    gate.hold()
    const first = sendMessage(a, 'general', 'q-0')
    await Promise.race([gate.held(), delay(5000).then(() => { throw new Error('the first insert never reached the database') })])
    const ids = ['q-1', 'q-2', 'q-3', 'q-4', 'q-5', 'q-6', 'q-7', 'q-8']
    const refsById = new Map(ids.map((id) => [id, sendMessage(a, 'general', id)]))
    const refused = ['q-6', 'q-7', 'q-8']
    for (const id of refused) {
      const answer = await reply(a, refsById.get(id)!, 3000).catch((error: Error) => ({ type: 'timeout', message: error.message }) as Frame)
      t.match(answer, { type: 'error', code: 'unavailable', ref: refsById.get(id) }, `${id}: refused at once with unavailable while the write is held`)
    }
    t.strictSame(a.pending().filter((f) => f.type === 'ack' || f.type === 'error'), [], 'nothing else answered while the write is held')
    t.strictSame((await drainUntilPong(b)).filter((f) => f.type === 'message'), [], 'nothing published while the write is held')

    gate.release()
    const accepted = ['q-0', 'q-1', 'q-2', 'q-3', 'q-4', 'q-5']
    const acks = new Map<string, Frame>()
    for (const id of accepted) {
      const answer = await reply(a, id === 'q-0' ? first : refsById.get(id)!, 5000).catch((error: Error) => ({ type: 'timeout', message: error.message }) as Frame)
      t.match(answer, { type: 'ack', clientMsgId: id }, `${id}: acked once the write finished`)
      acks.set(id, answer)
    }
    t.strictSame((await drainUntilPong(b)).filter((f) => f.type === 'message').map((f) => f.clientMsgId), accepted, 'bob got the accepted ones only, in order')

    let stored = await readWholeHistory(api, alice.token, 'general')
    checkGapless(t, stored, 'history after the burst')
    t.strictSame(stored.map((m) => m.clientMsgId), accepted, 'the refused ones were not stored')
    for (const m of stored) t.match(m, { id: acks.get(m.clientMsgId ?? '')?.id, seq: acks.get(m.clientMsgId ?? '')?.seq }, `${String(m.clientMsgId)}: stored as acked`)

    // Retrying the refused ones with the same clientMsgId stores them, once.
    const retried = await resendUntilAcked(t, a, 'general', refused, 5000)
    t.strictSame(refused.map((id) => retried.get(id)?.seq), [7, 8, 9], 'the retries get the next seqs')
    t.strictSame((await drainUntilPong(b)).filter((f) => f.type === 'message').map((f) => f.clientMsgId), refused, 'and reach bob once')
    stored = await readWholeHistory(api, alice.token, 'general')
    checkGapless(t, stored, 'history after the retries')
    t.strictSame(stored.map((m) => m.clientMsgId), [...accepted, ...refused], 'every clientMsgId once')
  })
})
