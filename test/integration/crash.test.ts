// The crash test (API.md, "Guarantees": "After a crash (SIGKILL), nothing that was acked is lost;
// clients re-send unacked messages with the same clientMsgId and nothing is duplicated").
//
// The real entry point runs as a process. Several sockets send a burst of messages, each with its
// own clientMsgId, without waiting for acks; once some acks are in and others are still in flight
// the process is SIGKILLed. A new process on the same DATA_DIR (embedded database; its stale lock
// is taken over) or the same Postgres database must hold every acked message exactly once, with
// the acked id and seq; re-sending the whole burst then fills in the rest: every clientMsgId once,
// acked ones unchanged, seq gapless 1..N.
import { mkdtempSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { createClient, type ApiClient } from '../helpers/http.js'
import { eachBackend } from '../helpers/server.js'
import { connect, type Frame, type TestSocket } from '../helpers/socket.js'
import { spawnServer, type ServerProcess } from '../helpers/spawn.js'
import { signJwt } from '../helpers/tokens.js'

const SECRET = 'crash-test-secret-that-is-at-least-32-bytes'
const SOCKETS = 3
const PER_SOCKET = 400
/** Pace of the burst: this many frames per socket every few milliseconds, so it lasts a while. */
const CHUNK = 10
const EVERY_MS = 5
/** Acks to see before the kill. */
const ACKS_BEFORE_KILL = 100

interface User { readonly id: string, readonly username: string, readonly token: string }
interface Stored { id: string, seq: number, userId: string, body: string, clientMsgId: string | null }
interface Planned { readonly socket: number, readonly clientMsgId: string, readonly body: string }

const delay = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

async function waitUntil (what: string, ms: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await delay(2)
  }
}

function tempDir (t: Test): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'chat-crash-')))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Registers a user (one password hash) and signs its token here, instead of logging in (a second hash). */
async function user (api: ApiClient, username: string): Promise<User> {
  const res = await api.request('POST', '/auth/register', { json: { username, password: 'correct-horse-battery' } })
  if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${res.text}`)
  const token = signJwt({ alg: 'HS256', typ: 'JWT' }, { sub: res.body.id, username, exp: Math.floor(Date.now() / 1000) + 3600 }, { secret: SECRET })
  return { id: res.body.id, username, token }
}

async function history (api: ApiClient, token: string, room: string): Promise<Stored[]> {
  const all: Stored[] = []
  let after = 0
  for (;;) {
    const res = await api.request('GET', `/rooms/${room}/messages?after=${after}&limit=100`, { token })
    if (res.status !== 200) throw new Error(`history: ${res.status} ${res.text}`)
    all.push(...res.body.messages as Stored[])
    if (!res.body.hasMore || res.body.messages.length === 0) return all
    after = all[all.length - 1]!.seq
  }
}

async function joinAll (t: Test, sockets: TestSocket[], room: string): Promise<void> {
  for (const s of sockets) {
    const joined = await s.request({ type: 'join', room })
    t.equal(joined.type, 'joined', `joined ${room}`)
  }
}

/** Every reply (by ref = clientMsgId) a socket gets, as it arrives. */
function trackReplies (sockets: TestSocket[]): Map<string, Frame> {
  const replies = new Map<string, Frame>()
  for (const s of sockets) {
    s.ws.on('message', (data, isBinary) => {
      if (isBinary) return
      const frame = JSON.parse(data.toString()) as Frame
      if ((frame.type === 'ack' || frame.type === 'error') && typeof frame.ref === 'string') replies.set(frame.ref, frame)
    })
  }
  return replies
}

const send = (s: TestSocket, room: string, p: Planned): void => {
  // ref = clientMsgId: one reply per message, found by either.
  s.send({ type: 'message', room, body: p.body, clientMsgId: p.clientMsgId, ref: p.clientMsgId })
}

async function run (t: Test, env: Record<string, string>): Promise<void> {
  const room = 'general'
  const plan: Planned[][] = Array.from({ length: SOCKETS }, (_, i) =>
    Array.from({ length: PER_SOCKET }, (_, j) => ({ socket: i, clientMsgId: `crash-${i}-${j}`, body: `burst message ${j} from socket ${i}` })))
  const all = plan.flat()

  // First life: the burst, and a SIGKILL in the middle of it.
  const first = spawnServer(t, { env })
  const base1 = `http://127.0.0.1:${await first.listening()}`
  const api1 = createClient(base1)
  const users: User[] = []
  for (let i = 0; i < SOCKETS; i++) users.push(await user(api1, `crash_${i}`))
  const sockets1 = await Promise.all(users.map(async (u) => await connect(base1, u.token)))
  t.teardown(() => { for (const s of sockets1) s.ws.terminate() })
  await joinAll(t, sockets1, room)
  const replies = trackReplies(sockets1)
  const sentCount = plan.map(() => 0)
  const timer = setInterval(() => {
    sockets1.forEach((s, i) => {
      for (let k = 0; k < CHUNK && sentCount[i]! < PER_SOCKET && s.ws.readyState === WebSocket.OPEN; k++) send(s, room, plan[i]![sentCount[i]!++]!)
    })
  }, EVERY_MS)
  t.teardown(() => clearInterval(timer))
  const acked = (): number => [...replies.values()].filter((f) => f.type === 'ack').length
  await waitUntil(`${ACKS_BEFORE_KILL} acks`, 20_000, () => acked() >= ACKS_BEFORE_KILL)
  first.child.kill('SIGKILL')
  const sentAtKill = sentCount.reduce((a, b) => a + b, 0)
  const repliedAtKill = replies.size
  const exit = await first.exited(10_000)
  clearInterval(timer)
  t.same(exit, { code: null, signal: 'SIGKILL' }, 'the server was killed')

  const acks = new Map([...replies].filter(([, f]) => f.type === 'ack'))
  const errors = [...replies.values()].filter((f) => f.type === 'error')
  const sent = sentCount.reduce((a, b) => a + b, 0)
  t.comment(`at the kill: ${sentAtKill} sent, ${repliedAtKill} answered; in the end ${sent} sent, ${acks.size} acked, ${errors.length} errors, ${sent - replies.size} unanswered, ${all.length - sent} never sent`)
  t.ok(acks.size > 0, 'some messages were acked before the kill')
  t.ok(sentAtKill > repliedAtKill, `others were in flight at the kill (${sentAtKill - repliedAtKill})`)
  t.strictSame(errors, [], 'no errors during the burst')
  for (const [id, ack] of acks) {
    if (ack.clientMsgId !== id || ack.room !== room) t.fail(`ack ${id} names another message: ${JSON.stringify(ack)}`)
  }

  // Second life on the same DATA_DIR / database.
  const second = spawnServer(t, { env })
  const base2 = `http://127.0.0.1:${await second.listening()}`
  const api2 = createClient(base2)
  const before = await history(api2, users[0]!.token, room)
  const beforeById = new Map(before.map((m) => [m.clientMsgId, m]))
  t.equal(beforeById.size, before.length, 'after the restart, no clientMsgId is stored twice')
  t.strictSame(before.map((m) => m.seq), Array.from({ length: before.length }, (_, i) => i + 1), `after the restart, seq is 1..${before.length}, gapless`)
  const planned = new Map(all.map((p) => [p.clientMsgId, p]))
  t.ok(before.every((m) => planned.has(m.clientMsgId ?? '')), 'everything stored comes from the burst')
  let lost = 0
  for (const [id, ack] of acks) {
    const m = beforeById.get(id)
    if (m === undefined || m.id !== ack.id || m.seq !== ack.seq || m.body !== planned.get(id)?.body || m.userId !== users[planned.get(id)!.socket]!.id) {
      lost++
      t.fail(`acked ${id} (id ${String(ack.id)}, seq ${String(ack.seq)}) is not stored as acked: ${JSON.stringify(m)}`)
    }
  }
  t.equal(lost, 0, `every one of the ${acks.size} acked messages survived the crash with its id and seq`)
  t.comment(`stored after the restart: ${before.length} (${before.length - acks.size} of them stored but not acked before the kill)`)

  // Every client re-sends its whole burst, acked or not, with the same clientMsgIds.
  const sockets2 = await Promise.all(users.map(async (u) => await connect(base2, u.token)))
  t.teardown(() => { for (const s of sockets2) s.ws.terminate() })
  await joinAll(t, sockets2, room)
  const again = trackReplies(sockets2)
  let waiting = all
  const deadline = Date.now() + 30_000
  while (waiting.length > 0 && Date.now() < deadline) {
    for (const p of waiting) {
      again.delete(p.clientMsgId)
      send(sockets2[p.socket]!, room, p)
    }
    const batch = waiting
    await waitUntil('answers to the re-sent burst', Math.max(1, deadline - Date.now()), () => batch.every((p) => again.has(p.clientMsgId))).catch(() => {})
    // `unavailable` is the one answer that invites a retry.
    waiting = batch.filter((p) => again.get(p.clientMsgId)?.type !== 'ack' && (again.get(p.clientMsgId) === undefined || again.get(p.clientMsgId)?.code === 'unavailable'))
    if (waiting.length > 0) await delay(200)
  }
  const notAcked = all.filter((p) => again.get(p.clientMsgId)?.type !== 'ack')
  t.strictSame(notAcked.map((p) => ({ id: p.clientMsgId, reply: again.get(p.clientMsgId) ?? null })).slice(0, 5), [], 'every re-sent message is acked')
  let changed = 0
  for (const [id, ack] of acks) {
    const now = again.get(id)
    if (now?.id !== ack.id || now?.seq !== ack.seq) {
      changed++
      t.fail(`re-sent ${id}: acked ${String(ack.id)}/${String(ack.seq)} before the crash, ${String(now?.id)}/${String(now?.seq)} now`)
    }
  }
  t.equal(changed, 0, 'messages acked before the crash get their original ack back')
  let moved = 0
  for (const m of before) {
    const now = again.get(m.clientMsgId ?? '')
    if (now?.id !== m.id || now?.seq !== m.seq) moved++
  }
  t.equal(moved, 0, 'messages stored (acked or not) before the crash are answered with the stored id and seq')

  const after = await history(api2, users[0]!.token, room)
  t.equal(after.length, all.length, `history holds the ${all.length} messages of the burst`)
  t.strictSame(after.map((m) => m.seq), Array.from({ length: after.length }, (_, i) => i + 1), `seq is 1..${after.length}, gapless`)
  const counts = new Map<string, number>()
  for (const m of after) counts.set(m.clientMsgId ?? '', (counts.get(m.clientMsgId ?? '') ?? 0) + 1)
  const wrongCount = all.filter((p) => counts.get(p.clientMsgId) !== 1)
  t.strictSame(wrongCount.map((p) => `${p.clientMsgId} x${counts.get(p.clientMsgId) ?? 0}`).slice(0, 10), [], 'each clientMsgId appears exactly once')
  let mismatched = 0
  for (const m of after) {
    const p = planned.get(m.clientMsgId ?? '')
    const ack = again.get(m.clientMsgId ?? '')
    if (p === undefined || m.body !== p.body || m.userId !== users[p.socket]!.id || ack?.id !== m.id || ack?.seq !== m.seq) mismatched++
  }
  t.equal(mismatched, 0, 'each stored message has its body and sender, and the id and seq its ack named')
  for (const [id, ack] of acks) {
    const m = after.find((x) => x.clientMsgId === id)
    if (m?.id !== ack.id || m?.seq !== ack.seq) t.fail(`${id} moved after the re-send: ${JSON.stringify(m)}`)
  }

  t.same(await stop(second), { code: 0, signal: null }, 'the second server stops cleanly')
}

async function stop (server: ServerProcess): Promise<unknown> {
  return await server.stop('SIGTERM', 15_000).catch((error: Error) => error.message)
}

t.test('SIGKILL in the middle of a burst: acked messages survive, re-sending the burst fills the rest once', async (t) => {
  eachBackend(t, async (t, backend) => {
    const dataDir = tempDir(t)
    const { url, drop } = await backend.provision()
    t.teardown(drop)
    await run(t, {
      HOST: '127.0.0.1',
      PORT: '0',
      DATA_DIR: dataDir,
      DATABASE_URL: url ?? '',
      JWT_SECRET: SECRET,
      LOG_LEVEL: 'info',
      WS_RATE: '100000',
      WS_BURST: '100000'
    })
  })
})
