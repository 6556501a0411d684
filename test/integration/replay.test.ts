import t, { type Test } from 'tap'
import type { Message } from '../../src/protocol/resources.js'
import {
  asMessage, connectUntilTeardown, createRoom, delay, firstDifference, HIGH_FRAME_RATE, range, readWholeHistory, roomLastSeq, sameSeqs, waitUntil, type Account
} from '../helpers/chat.js'
import { eachBackend, startTestServer } from '../helpers/server.js'
import { barrier, messageEvents, receivedAcks, receivedErrors, type Frame, type TestSocket } from '../helpers/socket.js'

// `join` with `afterSeq` (API.md, "WebSocket /ws"): every stored message after it, oldest first,
// then `joined`; across the replay and live traffic each seq once, in order, with no gap.

/** Asserts every event is the stored message of its seq, field for field; reports the first that is not. */
function matchesHistory (t: Test, frames: Frame[], stored: Map<number, Message>, what: string): void {
  const bad = frames.filter((f) => JSON.stringify(asMessage(f)) !== JSON.stringify(stored.get(f.seq)))
  t.equal(bad.length, 0, `${what}: every event is the stored message`, bad.length === 0 ? {} : { first: bad[0], stored: stored.get(bad[0]?.seq) })
}

/** The room's `message` events and its `joined` reply, in arrival order. */
function roomFrames (socket: TestSocket, room: string, joinRef: string, from = 0): Frame[] {
  return socket.received.slice(from).filter((f) => f.room === room && (f.type === 'message' || (f.type === 'joined' && f.ref === joinRef)))
}

/**
 * Checks what one join delivered: the message events from `afterSeq + 1` to `finalSeq`, each once,
 * in order; the replayed ones before `joined`, its lastSeq the last of them, and only later seqs
 * after it, continuing from there. Without afterSeq the stream starts at joined.lastSeq + 1, except
 * that live messages which arrived while the join was served may come just before `joined` (its
 * lastSeq then counts them): API.md does not rule that out, and the client still sees each seq
 * once, in order, with no gap.
 */
function checkJoin (t: Test, frames: Frame[], afterSeq: number | undefined, finalSeq: number, stored: Map<number, Message>, what: string): void {
  const at = frames.findIndex((f) => f.type === 'joined')
  t.equal(frames.filter((f) => f.type === 'joined').length, 1, `${what}: one joined`)
  const joined = frames[at]
  if (joined === undefined) return
  const lastSeq = joined.lastSeq as number
  const before = frames.slice(0, at).map((f) => f.seq as number)
  const after = frames.slice(at + 1).map((f) => f.seq as number)
  const start = afterSeq ?? lastSeq - before.length
  // Around joined, as received: what a failure needs to be understood.
  const timeline = frames.slice(Math.max(0, at - 8), at + 16).map((f) => f.type === 'joined' ? `[joined lastSeq=${f.lastSeq as number}]` : String(f.seq)).join(' ')
  const all = [...before, ...after]
  const expected = range(start + 1, finalSeq)
  const ok = all.length === expected.length && all.every((seq, i) => seq === expected[i])
  t.ok(ok, `${what}: seqs ${start + 1}..${finalSeq}, each once, in order`, ok ? {} : { diagnostic: true, difference: firstDifference(all, expected), aroundJoined: timeline })
  sameSeqs(t, before, range(start + 1, lastSeq), `${what}: before joined: ${start + 1}..joined.lastSeq (${lastSeq})`)
  t.ok(after.every((seq) => seq > lastSeq), `${what}: every live message after joined is above joined.lastSeq`)
  t.equal(after[0] ?? lastSeq + 1, lastSeq + 1, `${what}: live messages continue right after joined.lastSeq`)
  matchesHistory(t, frames.filter((f) => f.type === 'message'), stored, what)
}

eachBackend(t, async (t, backend) => {
  const { api, baseUrl } = await startTestServer(t, backend, { env: HIGH_FRAME_RATE })

  const open = async (user: Account): Promise<TestSocket> => await connectUntilTeardown(t, baseUrl, user.token)
  const joinRoom = async (t: Test, socket: TestSocket, room: string, afterSeq?: number): Promise<Frame> => {
    const reply = await socket.request(afterSeq === undefined ? { type: 'join', room } : { type: 'join', room, afterSeq }, 20_000)
    t.equal(reply.type, 'joined', `joined ${room} (afterSeq ${afterSeq ?? 'none'})`)
    return reply
  }
  /** Sends `count` messages from a joined socket at once and waits for their acks. */
  const seed = async (socket: TestSocket, room: string, count: number, tag: string): Promise<void> => {
    const before = receivedAcks(socket).length + receivedErrors(socket).length
    for (let k = 0; k < count; k++) socket.send({ type: 'message', room, body: `${tag} #${k}`, clientMsgId: `${tag}-${k}` })
    await waitUntil(() => receivedAcks(socket).length + receivedErrors(socket).length >= before + count, 30_000, () => `${receivedAcks(socket).length - before} of ${count} seed acks`)
    if (receivedErrors(socket).length > 0) throw new Error(`seeding ${room}: ${JSON.stringify(receivedErrors(socket)[0])}`)
  }
  /**
   * Keeps a socket sending (at most `window` unacked) until `stop()`; resolves with the number sent
   * once every one of them is answered.
   */
  const keepSending = async (socket: TestSocket, room: string, tag: string, stop: () => boolean, window = 8, pauseMs = 2): Promise<number> => {
    const base = receivedAcks(socket).length + receivedErrors(socket).length
    let sent = 0
    while (!stop()) {
      socket.send({ type: 'message', room, body: `${tag} live #${sent}`, clientMsgId: `${tag}-live-${sent}` })
      sent++
      if (sent - (receivedAcks(socket).length + receivedErrors(socket).length - base) >= window) {
        await waitUntil(() => sent - (receivedAcks(socket).length + receivedErrors(socket).length - base) < window || stop(), 10_000, () => `${tag}: acks stalled`)
      }
      await delay(pauseMs)
    }
    await waitUntil(() => receivedAcks(socket).length + receivedErrors(socket).length - base >= sent, 20_000, () => `${tag}: waiting for the last acks`)
    return sent
  }

  const owner = await api.user('owner')

  t.test('join with afterSeq: the stored messages after it, oldest first, then joined', async (t) => {
    await createRoom(api, owner, 'basic')
    const writer = await open(owner)
    await joinRoom(t, writer, 'basic')
    await seed(writer, 'basic', 30, 'basic')
    const stored = new Map((await readWholeHistory(api, owner.token, 'basic')).map((m) => [m.seq, m]))
    const reader = await api.user('reader')

    for (const afterSeq of [0, 10, 29]) {
      const socket = await open(reader)
      const joined = await joinRoom(t, socket, 'basic', afterSeq)
      t.equal(joined.lastSeq, 30, `afterSeq ${afterSeq}: joined.lastSeq is the room's`)
      const frames = socket.received.filter((f) => f.type !== 'welcome')
      const at = frames.indexOf(joined)
      sameSeqs(t, frames.slice(0, at).map((f) => f.seq as number), range(afterSeq + 1, 30), `afterSeq ${afterSeq}: messages ${afterSeq + 1}..30 first, oldest first`)
      t.ok(frames.slice(0, at).every((f) => f.type === 'message' && f.room === 'basic'), `afterSeq ${afterSeq}: only message events before joined`)
      matchesHistory(t, frames.slice(0, at), stored, `afterSeq ${afterSeq}`)
      await barrier(socket)
      t.equal(messageEvents(socket, 'basic').length, 30 - afterSeq, `afterSeq ${afterSeq}: nothing after joined`)
      await socket.close()
    }
    // At or beyond lastSeq, or without afterSeq: no replay; then live traffic continues from lastSeq.
    for (const ahead of [0, 1, 1_000_000, undefined]) {
      const lastSeq = await roomLastSeq(api, owner.token, 'basic')
      const afterSeq = ahead === undefined ? undefined : lastSeq + ahead
      const what = afterSeq === undefined ? 'no afterSeq' : `afterSeq lastSeq+${ahead}`
      const socket = await open(reader)
      const joined = await joinRoom(t, socket, 'basic', afterSeq)
      t.equal(joined.lastSeq, lastSeq, `${what}: joined.lastSeq is the room's (${lastSeq})`)
      await barrier(socket)
      t.equal(messageEvents(socket, 'basic').length, 0, `${what}: no message events`)
      const ack = await writer.request({ type: 'message', room: 'basic', body: 'probe', clientMsgId: `probe-${what}` })
      t.match(await socket.next('message'), { seq: lastSeq + 1, id: ack.id }, `${what}: the next live message arrives, seq ${lastSeq + 1}`)
      await socket.close()
    }
  })

  t.test('afterSeq 0 on a room with more than two replay pages arrives complete and in order', async (t) => {
    const COUNT = 1_234
    await createRoom(api, owner, 'big')
    const writer = await open(owner)
    await joinRoom(t, writer, 'big')
    await seed(writer, 'big', COUNT, 'big')
    const stored = new Map((await readWholeHistory(api, owner.token, 'big')).map((m) => [m.seq, m]))
    t.equal(stored.size, COUNT, 'history holds every seeded message')
    const reader = await open(await api.user('bigreader'))
    const joined = await joinRoom(t, reader, 'big', 0)
    t.equal(joined.lastSeq, COUNT, 'joined.lastSeq')
    const frames = reader.received.filter((f) => f.type !== 'welcome')
    const at = frames.indexOf(joined)
    sameSeqs(t, frames.slice(0, at).map((f) => f.seq as number), range(1, COUNT), `1..${COUNT} before joined, in order`)
    matchesHistory(t, frames.slice(0, at), stored, 'afterSeq 0')
    await barrier(reader)
    t.equal(messageEvents(reader, 'big').length, COUNT, 'nothing replayed twice')
  })

  t.test('replay during live traffic: every joiner sees each seq once, in order, with no gap', async (t) => {
    const ROOM = 'live'
    const SEEDED = 1_500
    await createRoom(api, owner, ROOM)
    const seeder = await open(owner)
    await joinRoom(t, seeder, ROOM)
    await seed(seeder, ROOM, SEEDED, 'seed')

    const senders: TestSocket[] = []
    const senderJoins: Frame[] = []
    for (let i = 0; i < 3; i++) {
      const socket = await open(await api.user(`sender${i}`))
      senderJoins.push(await joinRoom(t, socket, ROOM))
      senders.push(socket)
    }
    let stop = false
    const sending = senders.map(async (socket, i) => await keepSending(socket, ROOM, `s${i}`, () => stop))
    const highestAck = (): number => Math.max(0, ...senders.flatMap((s) => receivedAcks(s).map((f) => f.seq as number)))

    // Joiners at various points, staggered, all while the senders keep going.
    const joiners: Array<{ name: string, socket: TestSocket, afterSeq: number | undefined, ref: string }> = []
    const reader = await api.user('joiner')
    const plan: Array<{ name: string, afterSeq: () => number | undefined }> = [
      { name: 'afterSeq 0', afterSeq: () => 0 },
      { name: 'afterSeq middle', afterSeq: () => 750 },
      { name: 'afterSeq near the end', afterSeq: () => Math.max(0, highestAck() - 3) },
      { name: 'no afterSeq', afterSeq: () => undefined },
      { name: 'afterSeq 0, later', afterSeq: () => 0 },
      { name: 'afterSeq 1', afterSeq: () => 1 },
      { name: 'afterSeq at the latest ack', afterSeq: () => highestAck() }
    ]
    await waitUntil(() => highestAck() > SEEDED + 20, 10_000, () => `live traffic has not started (highest ack ${highestAck()})`)
    // Twice over: each join is one more chance for a replay to meet a batch being committed.
    for (const step of [...plan, ...plan]) {
      const socket = await open(reader)
      const afterSeq = step.afterSeq()
      const ref = `join-${joiners.length}`
      socket.send(afterSeq === undefined ? { type: 'join', room: ROOM, ref } : { type: 'join', room: ROOM, afterSeq, ref })
      joiners.push({ name: `${step.name} (#${joiners.length})`, socket, afterSeq, ref })
      await delay(40)
    }
    await waitUntil(() => joiners.every((j) => j.socket.received.some((f) => f.ref === j.ref)), 20_000,
      () => joiners.filter((j) => !j.socket.received.some((f) => f.ref === j.ref)).map((j) => j.name).join(', ') + ' not answered')
    for (const j of joiners) {
      const reply = j.socket.received.find((f) => f.ref === j.ref)
      t.equal(reply?.type, 'joined', `${j.name}: joined (${JSON.stringify(reply).slice(0, 120)})`)
    }
    const liveAtJoins = highestAck()
    await delay(400)
    stop = true
    const sent = await Promise.all(sending)
    t.strictSame(senders.flatMap(receivedErrors), [], 'no sender got an error')
    const finalSeq = await roomLastSeq(api, owner.token, ROOM)
    t.equal(highestAck(), finalSeq, 'the room\'s lastSeq is the highest ack')
    t.equal(finalSeq, SEEDED + sent.reduce((a, b) => a + b, 0), 'lastSeq = seeded + every live message sent')
    t.ok(liveAtJoins < finalSeq, `traffic went on after the last join (at ${liveAtJoins}, final ${finalSeq})`)
    t.comment(`seeded ${SEEDED}, live ${finalSeq - SEEDED} (${sent.join(' + ')}), joins answered by seq ${liveAtJoins}`)

    const everyone = [...joiners.map((j) => j.socket), ...senders, seeder]
    await waitUntil(() => everyone.every((s) => s.received.some((f) => f.type === 'message' && f.room === ROOM && f.seq === finalSeq) || receivedAcks(s).some((f) => f.seq === finalSeq)),
      15_000, () => 'the last message has not reached everyone')
    await Promise.all(everyone.map(barrier))
    const stored = new Map((await readWholeHistory(api, owner.token, ROOM)).map((m) => [m.seq, m]))
    sameSeqs(t, [...stored.keys()], range(1, finalSeq), 'history is 1..lastSeq')

    for (const j of joiners) {
      const frames = roomFrames(j.socket, ROOM, j.ref)
      checkJoin(t, frames, j.afterSeq, finalSeq, stored, j.name)
      t.strictSame(receivedErrors(j.socket), [], `${j.name}: no errors`)
    }
    // The senders, joined before the traffic: other senders' events plus their own acks, no gap.
    senders.forEach((socket, i) => {
      const start = (senderJoins[i]?.lastSeq as number) + 1
      const seen = messageEvents(socket, ROOM).map((f) => f.seq as number)
      t.ok(seen.every((seq, k) => k === 0 || seq > (seen[k - 1] as number)), `sender ${i}: events in strictly increasing seq`)
      sameSeqs(t, [...seen, ...receivedAcks(socket).map((f) => f.seq as number)].sort((a, b) => a - b), range(start, finalSeq), `sender ${i}: events plus acks are ${start}..${finalSeq}`)
      matchesHistory(t, messageEvents(socket, ROOM), stored, `sender ${i}`)
    })
  })

  t.test('many short catch-up joins during heavy traffic: each seq once, in order, with no gap', async (t) => {
    // The same guarantee as above, from many joins that each replay only the last few messages:
    // every join is one more chance to read a message that is committed but not yet published.
    const ROOM = 'catchup'
    const JOINS = 40
    await createRoom(api, owner, ROOM)
    const senders: TestSocket[] = []
    for (let i = 0; i < 3; i++) {
      const socket = await open(await api.user(`catchup${i}`))
      await joinRoom(t, socket, ROOM)
      senders.push(socket)
    }
    let stop = false
    const sending = senders.map(async (socket, i) => await keepSending(socket, ROOM, `c${i}`, () => stop, 16, 1))
    const highestAck = (): number => Math.max(0, ...senders.flatMap((s) => receivedAcks(s).map((f) => f.seq as number)))
    await waitUntil(() => highestAck() > 50, 10_000, () => 'live traffic has not started')
    const reader = await api.user('catcher')
    const joiners: Array<{ socket: TestSocket, afterSeq: number, ref: string }> = []
    for (let n = 0; n < JOINS; n++) {
      const socket = await open(reader)
      const afterSeq = Math.max(0, highestAck() - 2)
      socket.send({ type: 'join', room: ROOM, afterSeq, ref: `c${n}` })
      joiners.push({ socket, afterSeq, ref: `c${n}` })
      await delay(10)
    }
    await waitUntil(() => joiners.every((j) => j.socket.received.some((f) => f.ref === j.ref)), 20_000, () => 'joins not answered')
    await delay(200)
    stop = true
    await Promise.all(sending)
    t.strictSame(senders.flatMap(receivedErrors), [], 'no sender got an error')
    const finalSeq = await roomLastSeq(api, owner.token, ROOM)
    await waitUntil(() => joiners.every((j) => messageEvents(j.socket, ROOM).some((f) => f.seq === finalSeq)), 15_000, () => 'the last message has not reached every joiner')
    await Promise.all(joiners.map(async (j) => await barrier(j.socket)))
    const stored = new Map((await readWholeHistory(api, owner.token, ROOM)).map((m) => [m.seq, m]))
    sameSeqs(t, [...stored.keys()], range(1, finalSeq), 'history is 1..lastSeq')
    const failed: string[] = []
    for (const [n, j] of joiners.entries()) {
      const frames = roomFrames(j.socket, ROOM, j.ref)
      const seqs = frames.filter((f) => f.type === 'message').map((f) => f.seq as number)
      const ok = seqs.length === finalSeq - j.afterSeq && seqs.every((seq, i) => seq === j.afterSeq + 1 + i)
      if (ok) continue
      failed.push(`join #${n} afterSeq ${j.afterSeq}`)
      // The full checks for the first few that went wrong, with their timelines.
      if (failed.length <= 2) checkJoin(t, frames, j.afterSeq, finalSeq, stored, `join #${n}`)
    }
    t.strictSame(failed, [], `every one of ${JOINS} joins saw afterSeq+1..${finalSeq} once, in order`)
    t.comment(`${JOINS} joins during traffic up to seq ${finalSeq}`)
  })

  t.test('re-joining a joined room during live traffic', async (t) => {
    const ROOM = 'rejoin'
    await createRoom(api, owner, ROOM)
    const writer = await open(owner)
    await joinRoom(t, writer, ROOM)
    await seed(writer, ROOM, 100, 'pre')
    const reader = await api.user('rejoiner')
    const withReplay = await open(reader)
    const plain = await open(reader)
    const first = await joinRoom(t, withReplay, ROOM)
    const firstPlain = await joinRoom(t, plain, ROOM)
    t.equal(first.lastSeq, 100, 'first join at lastSeq 100')

    let stop = false
    const sending = keepSending(writer, ROOM, 'rj', () => stop)
    await waitUntil(() => messageEvents(withReplay, ROOM).length >= 30, 10_000, () => 'no live traffic')
    // Re-join with afterSeq 50 while messages keep coming; and re-join without afterSeq.
    const mark = withReplay.received.length
    const markPlain = plain.received.length
    const again = await joinRoom(t, withReplay, ROOM, 50)
    const againPlain = await joinRoom(t, plain, ROOM)
    await delay(300)
    stop = true
    await sending
    t.strictSame(receivedErrors(writer), [], 'the writer got no errors')
    const finalSeq = await roomLastSeq(api, owner.token, ROOM)
    await waitUntil(() => [withReplay, plain].every((s) => messageEvents(s, ROOM).some((f) => f.seq === finalSeq)), 10_000, () => 'the last message has not arrived')
    await Promise.all([withReplay, plain].map(barrier))
    const stored = new Map((await readWholeHistory(api, owner.token, ROOM)).map((m) => [m.seq, m]))

    // Before the re-join was served: the first subscription's live stream, 101 onwards, no gap.
    const frames = roomFrames(withReplay, ROOM, again.ref as string)
    const firstStream: number[] = []
    let i = 0
    for (; i < frames.length; i++) {
      const f = frames[i] as Frame
      if (f.type !== 'message' || (firstStream.length > 0 && (f.seq as number) <= (firstStream[firstStream.length - 1] as number))) break
      firstStream.push(f.seq as number)
    }
    t.ok(withReplay.received.indexOf(frames[i] ?? again) >= mark, 'the replay starts after the re-join was sent')
    sameSeqs(t, firstStream, range(101, 100 + firstStream.length), 'first subscription: 101.. with no gap until the re-join')
    checkJoin(t, frames.slice(i), 50, finalSeq, stored, 're-join with afterSeq 50')
    t.ok((again.lastSeq as number) >= (firstStream[firstStream.length - 1] ?? 0), 'the re-join\'s lastSeq covers what the first subscription delivered')

    // Without afterSeq the join starts over at its lastSeq (API.md promises nothing below it; a
    // client wanting continuity passes afterSeq, as above). What it does promise: the first
    // subscription's stream had no gap, nothing arrives twice, and after joined the stream
    // continues from joined.lastSeq + 1 with no gap.
    const plainFrames = plain.received.filter((f) => f.room === ROOM && f.type === 'message')
    const at = plain.received.indexOf(againPlain)
    const beforeRejoin = plain.received.slice(0, at).filter((f) => f.room === ROOM && f.type === 'message').map((f) => f.seq as number)
    const afterRejoin = plain.received.slice(at + 1).filter((f) => f.room === ROOM && f.type === 'message').map((f) => f.seq as number)
    t.ok(at >= markPlain, 're-join without afterSeq: its joined came after the re-join was sent')
    sameSeqs(t, beforeRejoin, range((firstPlain.lastSeq as number) + 1, (firstPlain.lastSeq as number) + beforeRejoin.length), 're-join without afterSeq: the first subscription\'s stream has no gap')
    t.ok((beforeRejoin[beforeRejoin.length - 1] ?? 0) <= (againPlain.lastSeq as number), 're-join without afterSeq: nothing delivered before joined is above its lastSeq')
    sameSeqs(t, afterRejoin, range((againPlain.lastSeq as number) + 1, finalSeq), 're-join without afterSeq: after joined, every seq from joined.lastSeq + 1 once, in order')
    t.comment(`re-join without afterSeq: the old subscription delivered up to ${beforeRejoin[beforeRejoin.length - 1] ?? 'nothing'}, joined.lastSeq ${againPlain.lastSeq as number}`)
    matchesHistory(t, plainFrames, stored, 're-join without afterSeq')
  })

  t.test('join then leave at once: joined, then left, then nothing from the room', async (t) => {
    const ROOM = 'brief'
    await createRoom(api, owner, ROOM)
    const writer = await open(owner)
    await joinRoom(t, writer, ROOM)
    await seed(writer, ROOM, 600, 'brief')
    const visitor = await api.user('visitor')

    for (const afterSeq of [undefined, 0, 590]) {
      const what = `afterSeq ${afterSeq ?? 'none'}`
      const socket = await open(visitor)
      socket.send(afterSeq === undefined ? { type: 'join', room: ROOM, ref: 'j' } : { type: 'join', room: ROOM, afterSeq, ref: 'j' })
      socket.send({ type: 'leave', room: ROOM, ref: 'l' })
      const left = await socket.next((f) => f.ref === 'l', 20_000)
      t.equal(left.type, 'left', `${what}: left`)
      const replies = socket.received.filter((f) => f.ref === 'j' || f.ref === 'l').map((f) => `${f.type}:${f.ref as string}`)
      t.strictSame(replies, ['joined:j', 'left:l'], `${what}: joined, then left, in that order`)
      const replayed = socket.received.slice(0, socket.received.findIndex((f) => f.ref === 'j')).filter((f) => f.type === 'message').length
      const before = messageEvents(socket, ROOM).length
      const lastSeq = socket.received.find((f) => f.ref === 'j')?.lastSeq as number
      t.equal(replayed, afterSeq === undefined ? 0 : lastSeq - afterSeq, `${what}: the replay came before joined`)
      // Messages to the room now must not reach the socket.
      for (let k = 0; k < 5; k++) await writer.request({ type: 'message', room: ROOM, body: `after leave ${k}` })
      await barrier(socket)
      t.equal(messageEvents(socket, ROOM).length, before, `${what}: no message events after left`)
      t.match(await socket.request({ type: 'typing', room: ROOM, typing: true }), { type: 'error', code: 'forbidden' }, `${what}: the room is no longer joined`)
      await socket.close()
    }
  })

  t.test('a message sent right after join, without waiting for joined, is accepted and delivered', async (t) => {
    const ROOM = 'eager'
    await createRoom(api, owner, ROOM)
    await createRoom(api, owner, 'eager-elsewhere')
    const watcher = await open(owner)
    await joinRoom(t, watcher, ROOM)
    // Enough history that a join with afterSeq 0 is still replaying when the message is stored.
    await seed(watcher, ROOM, 1_100, 'eager')
    const eager = await api.user('eager')
    const cases = [
      { what: 'a fresh socket, join without afterSeq', afterSeq: undefined, elsewhere: false },
      { what: 'a fresh socket, join with afterSeq 0 (the message is stored during the replay)', afterSeq: 0, elsewhere: false },
      { what: 'a socket already in another room, join with afterSeq 0', afterSeq: 0, elsewhere: true }
    ]
    for (const [n, c] of cases.entries()) {
      const socket = await open(eager)
      if (c.elsewhere) await joinRoom(t, socket, 'eager-elsewhere')
      const tag = `now-${n}`
      socket.send(c.afterSeq === undefined ? { type: 'join', room: ROOM, ref: 'j' } : { type: 'join', room: ROOM, afterSeq: c.afterSeq, ref: 'j' })
      socket.send({ type: 'message', room: ROOM, body: `right away ${n}`, clientMsgId: tag, ref: 'm' })
      const ack = await socket.next((f) => f.ref === 'm', 20_000)
      t.match(ack, { type: 'ack', room: ROOM, clientMsgId: tag }, `${c.what}: the message is acked`)
      const joined = await socket.next((f) => f.ref === 'j', 20_000)
      t.match(joined, { type: 'joined', room: ROOM }, `${c.what}: the join completes`)
      const stored = await readWholeHistory(api, owner.token, ROOM)
      t.match(stored.find((m) => m.seq === ack.seq), { id: ack.id, clientMsgId: tag, userId: eager.id }, `${c.what}: it is stored`)
      // Stored and acked: every other socket joined in the room must get it (API.md, `message`).
      await barrier(watcher)
      const delivered = messageEvents(watcher, ROOM).filter((f) => f.clientMsgId === tag)
      t.equal(delivered.length, 1, `${c.what}: a socket joined in the room gets the message event`, {
        ackBeforeJoined: socket.received.indexOf(ack) < socket.received.indexOf(joined)
      })
      await socket.close()
    }
  })
})
