// The crash test (API.md, "Guarantees": "After a crash (SIGKILL), nothing that was acked is lost;
// clients re-send unacked messages with the same clientMsgId and nothing is duplicated").
//
// The real entry point runs as a process. Several sockets send a burst of messages, each with its
// own clientMsgId, without waiting for acks; once some acks are in and others are still in flight
// the process is SIGKILLed. A new process on the same DATA_DIR (embedded database; its stale lock
// is taken over) or the same Postgres database must hold every acked message exactly once, with
// the acked id and seq; re-sending the whole burst then fills in the rest: every clientMsgId once,
// acked ones unchanged, seq gapless 1..N.
import t, { type Test } from 'tap'
import {
  BURST, connectAndJoin, delay, planBurst, range, readWholeHistory, registerAndLogIn, sendPlanned, spawnedServerEnv,
  startBurst, tempDataDir, trackReplies, waitUntil, type Account
} from '../helpers/chat.js'
import { createClient } from '../helpers/http.js'
import { eachBackend } from '../helpers/server.js'
import { spawnServer, type ServerProcess } from '../helpers/spawn.js'

const SECRET = 'crash-test-secret-that-is-at-least-32-bytes'

async function run (t: Test, env: Record<string, string>): Promise<void> {
  const room = 'general'
  const plan = planBurst('crash')
  const all = plan.flat()

  // First life: the burst, and a SIGKILL in the middle of it.
  const first = spawnServer(t, { env })
  const base1 = `http://127.0.0.1:${await first.listening()}`
  const api1 = createClient(base1)
  const users: Account[] = []
  for (let i = 0; i < BURST.sockets; i++) users.push(await registerAndLogIn(api1, `crash_${i}`))
  const sockets1 = await connectAndJoin(t, base1, users, room)
  const replies = trackReplies(sockets1)
  const burst = startBurst(t, sockets1, room, plan)
  const acked = (): number => [...replies.values()].filter((f) => f.type === 'ack').length
  await waitUntil(() => acked() >= BURST.acksBeforeSignal, 20_000, `${BURST.acksBeforeSignal} acks`)
  first.child.kill('SIGKILL')
  const sentAtKill = burst.sent()
  const repliedAtKill = replies.size
  const exit = await first.exited(10_000)
  burst.stop()
  t.same(exit, { code: null, signal: 'SIGKILL' }, 'the server was killed')

  const acks = new Map([...replies].filter(([, f]) => f.type === 'ack'))
  const errors = [...replies.values()].filter((f) => f.type === 'error')
  const sent = burst.sent()
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
  const before = await readWholeHistory(api2, users[0]!.token, room)
  const beforeById = new Map(before.map((m) => [m.clientMsgId, m]))
  t.equal(beforeById.size, before.length, 'after the restart, no clientMsgId is stored twice')
  t.strictSame(before.map((m) => m.seq), range(1, before.length), `after the restart, seq is 1..${before.length}, gapless`)
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
  const sockets2 = await connectAndJoin(t, base2, users, room)
  const again = trackReplies(sockets2)
  let waiting = all
  const deadline = Date.now() + 30_000
  while (waiting.length > 0 && Date.now() < deadline) {
    for (const p of waiting) {
      again.delete(p.clientMsgId)
      sendPlanned(sockets2[p.socket]!, room, p)
    }
    const batch = waiting
    await waitUntil(() => batch.every((p) => again.has(p.clientMsgId)), Math.max(1, deadline - Date.now()), 'answers to the re-sent burst').catch(() => {})
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

  const after = await readWholeHistory(api2, users[0]!.token, room)
  t.equal(after.length, all.length, `history holds the ${all.length} messages of the burst`)
  t.strictSame(after.map((m) => m.seq), range(1, after.length), `seq is 1..${after.length}, gapless`)
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
    const dataDir = tempDataDir(t, 'chat-crash-')
    const { url, drop } = await backend.provision()
    t.teardown(drop)
    await run(t, spawnedServerEnv(dataDir, SECRET, url ?? ''))
  })
})
