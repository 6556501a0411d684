// SIGTERM while sockets are sending (API.md, "Guarantees": "A stopped node (SIGTERM) stops
// accepting, writes every message it already accepted, then closes sockets with 1001"; close
// codes: 1001 server shutting down).
//
// The real entry point runs as a process on the embedded database in a temporary DATA_DIR; a
// restart on the same DATA_DIR reads the history back.
// 1. A burst from several sockets, not waiting for acks, and SIGTERM in the middle of it: exit 0,
//    every socket closed with 1001, every acked message stored exactly once with its id and seq,
//    nothing stored that the sender was not told about, nothing stored that was refused, seq
//    gapless; an upgrade attempted once the server says it is shutting down is refused.
// 2. A drain held open by an HTTP request still uploading its body: during it, new upgrades are
//    refused while the open sockets are still served; once the request ends the sockets get 1001.
import { connect as tcpConnect } from 'node:net'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import type { Message } from '../../src/protocol/resources.js'
import {
  BURST, connectAndJoin, delay, planBurst, range, readWholeHistory, registerAndLogIn, sendPlanned, spawnedServerEnv,
  startBurst, tempDataDir, trackReplies, waitUntil, type Account, type PlannedMessage
} from '../helpers/chat.js'
import { createClient } from '../helpers/http.js'
import { connect, type Closed, type Frame, type TestSocket } from '../helpers/socket.js'
import { spawnServer } from '../helpers/spawn.js'

const SECRET = 'shutdown-test-secret-that-is-at-least-32-bytes'

/** Tries an upgrade; 'refused: …' unless a socket opened (which is then closed again). */
async function tryUpgrade (base: string, token: string): Promise<string> {
  try {
    const s = await connect(base, token)
    s.ws.terminate()
    return 'opened'
  } catch (error) {
    return `refused: ${(error as Error).message}`
  }
}

const closedWithin = async (s: TestSocket, ms: number): Promise<Closed | string> =>
  await Promise.race([s.closed, delay(ms).then(() => `still open after ${ms} ms`)])

/**
 * The stored messages against what the senders were told: each acked one stored once with its id
 * and seq; each refused one not stored; nothing stored that was not acked; seq gapless.
 */
function checkAgainstReplies (t: Test, stored: Message[], replies: Map<string, Frame>, plan: Map<string, PlannedMessage>, users: Account[], label: string): void {
  t.strictSame(stored.map((m) => m.seq), range(1, stored.length), `${label}: seq is 1..${stored.length}, gapless`)
  const byId = new Map<string, Message[]>()
  for (const m of stored) byId.set(m.clientMsgId ?? '', [...byId.get(m.clientMsgId ?? '') ?? [], m])
  const acks = [...replies].filter(([, f]) => f.type === 'ack')
  const lost = acks.filter(([id, ack]) => {
    const found = byId.get(id) ?? []
    return found.length !== 1 || found[0]!.id !== ack.id || found[0]!.seq !== ack.seq || found[0]!.body !== plan.get(id)?.body
  })
  t.strictSame(lost.map(([id, ack]) => ({ id, ack: { id: ack.id, seq: ack.seq }, stored: byId.get(id) ?? [] })).slice(0, 5), [],
    `${label}: each of the ${acks.length} acked messages is stored exactly once, with its id and seq`)
  const refused = [...replies].filter(([, f]) => f.type === 'error')
  t.ok(refused.every(([, f]) => f.code === 'unavailable'), `${label}: the only error is unavailable (${JSON.stringify([...new Set(refused.map(([, f]) => f.code))])})`)
  t.strictSame(refused.filter(([id]) => byId.has(id)).map(([id]) => id), [], `${label}: nothing answered unavailable was stored`)
  const unacked = stored.filter((m) => replies.get(m.clientMsgId ?? '')?.type !== 'ack')
  t.strictSame(unacked.map((m) => m.clientMsgId).slice(0, 10), [], `${label}: every stored message was acked before its socket was closed`)
  t.ok(stored.every((m) => plan.has(m.clientMsgId ?? '') && m.userId === users[plan.get(m.clientMsgId ?? '')!.socket]!.id), `${label}: each stored message is from the burst, by its sender`)
}

t.test('SIGTERM while sockets send: exit 0, 1001 for all, every ack stored', async (t) => {
  const dataDir = tempDataDir(t, 'chat-shutdown-')
  const env = spawnedServerEnv(dataDir, SECRET)
  const users: Account[] = []
  const burstPlan = new Map<string, PlannedMessage>()
  let burstReplies = new Map<string, Frame>()
  const drainPlan = new Map<string, PlannedMessage>()
  let drainReplies = new Map<string, Frame>()

  t.test('a burst, SIGTERM in the middle of it', async (t) => {
    const server = spawnServer(t, { env })
    const base = `http://127.0.0.1:${await server.listening()}`
    const api = createClient(base)
    for (let i = 0; i < BURST.sockets; i++) users.push(await registerAndLogIn(api, `shut_${i}`))
    t.equal((await api.request('POST', '/rooms', { token: users[0]!.token, json: { id: 'burst' } })).status, 201, 'room created')
    const sockets = await connectAndJoin(t, base, users, 'burst')
    const replies = burstReplies = trackReplies(sockets)

    const plan = planBurst('burst')
    for (const p of plan.flat()) burstPlan.set(p.clientMsgId, p)
    const burst = startBurst(t, sockets, 'burst', plan)
    const acked = (): number => [...replies.values()].filter((f) => f.type === 'ack').length
    await waitUntil(() => acked() >= BURST.acksBeforeSignal, 20_000, `${BURST.acksBeforeSignal} acks`)
    server.child.kill('SIGTERM')
    const sentAtSignal = burst.sent()
    const repliedAtSignal = replies.size

    await waitUntil(() => server.logs.some((l) => l.msg === 'shutting down'), 5000, '"shutting down" in the log')
    const upgrade = await tryUpgrade(base, users[0]!.token)
    t.match(upgrade, /^refused/, `an upgrade once the server is shutting down is refused (${upgrade})`)

    const closes = await Promise.all(sockets.map(async (s) => await closedWithin(s, 15_000)))
    burst.stop()
    t.strictSame(closes.map((c) => typeof c === 'string' ? c : c.code), sockets.map(() => 1001), 'every socket is closed with 1001')
    const exit = await server.exited(15_000).catch((error: Error) => error.message)
    t.same(exit, { code: 0, signal: null }, 'the process exits 0')
    t.ok(server.logs.some((l) => l.msg === 'stopped'), 'and logs "stopped"')

    const sent = burst.sent()
    const acks = [...replies.values()].filter((f) => f.type === 'ack').length
    t.comment(`at SIGTERM: ${sentAtSignal} sent, ${repliedAtSignal} answered; in the end ${sent} sent, ${acks} acked, ${replies.size - acks} unavailable, ${sent - replies.size} unanswered`)
    t.ok(sentAtSignal > repliedAtSignal, `messages were in flight at SIGTERM (${sentAtSignal - repliedAtSignal})`)
  })

  t.test('a drain held open by a request in flight: upgrades refused, open sockets served, then 1001', async (t) => {
    const server = spawnServer(t, { env })
    const port = await server.listening()
    const base = `http://127.0.0.1:${port}`
    const api = createClient(base)
    t.equal((await api.request('POST', '/rooms', { token: users[0]!.token, json: { id: 'drain' } })).status, 201, 'room created')
    const sockets = await connectAndJoin(t, base, users, 'drain')
    const replies = drainReplies = trackReplies(sockets)

    // An upload that has sent its headers and half its body: the server waits for it before it closes the app.
    const body = JSON.stringify({ username: 'drain_late', password: 'correct-horse-battery' })
    const upload = tcpConnect(port, '127.0.0.1')
    upload.on('error', () => {})
    t.teardown(() => { upload.destroy() })
    let response = ''
    upload.setEncoding('utf8').on('data', (chunk: string) => { response += chunk })
    await new Promise<void>((resolve) => upload.once('connect', () => resolve()))
    upload.write(`POST /auth/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 10)}`)
    await delay(200)

    server.child.kill('SIGTERM')
    await waitUntil(() => server.logs.some((l) => l.msg === 'shutting down'), 5000, '"shutting down" in the log')
    const upgrade = await tryUpgrade(base, users[0]!.token)
    t.match(upgrade, /^refused/, `a new upgrade during the drain is refused (${upgrade})`)
    t.ok(sockets.every((s) => s.ws.readyState === WebSocket.OPEN), 'the open sockets are still open: the drain is in progress')

    // The open sockets are still answered: each message is either acked (and so stored) or refused.
    const plan = sockets.flatMap((_, i) => Array.from({ length: 20 }, (_, j) => ({ socket: i, clientMsgId: `drain-${i}-${j}`, body: `drain message ${j} from socket ${i}` })))
    for (const p of plan) {
      drainPlan.set(p.clientMsgId, p)
      sendPlanned(sockets[p.socket]!, 'drain', p)
    }
    await waitUntil(() => plan.every((p) => replies.has(p.clientMsgId)), 5000, 'answers during the drain').catch(() => {})
    const answers = plan.map((p) => replies.get(p.clientMsgId))
    t.ok(answers.every((f) => f?.type === 'ack' || (f?.type === 'error' && f.code === 'unavailable')),
      `every message sent during the drain is answered with ack or unavailable (${answers.filter((f) => f?.type === 'ack').length} acked)`)
    t.equal(server.child.exitCode, null, 'the server is still draining')

    upload.write(body.slice(10))
    const closes = await Promise.all(sockets.map(async (s) => await closedWithin(s, 15_000)))
    t.strictSame(closes.map((c) => typeof c === 'string' ? c : c.code), sockets.map(() => 1001), 'then every socket is closed with 1001')
    const exit = await server.exited(15_000).catch((error: Error) => error.message)
    t.same(exit, { code: 0, signal: null }, 'the process exits 0')
    t.match(response, /^HTTP\/1\.1 \d{3}/, `the upload in flight got its answer (${response.split('\r\n')[0] ?? ''})`)
  })

  t.test('after a restart on the same DATA_DIR, history matches the acks', async (t) => {
    const server = spawnServer(t, { env })
    const api = createClient(`http://127.0.0.1:${await server.listening()}`)
    if (users.length === 0) return t.fail('the first step did not get as far as registering users')
    checkAgainstReplies(t, await readWholeHistory(api, users[0]!.token, 'burst'), burstReplies, burstPlan, users, 'burst')
    checkAgainstReplies(t, await readWholeHistory(api, users[0]!.token, 'drain'), drainReplies, drainPlan, users, 'drain')
    t.same(await server.stop('SIGTERM', 15_000).catch((error: Error) => error.message), { code: 0, signal: null }, 'stops cleanly')
  })
})
