import t, { type Test } from 'tap'
import type { Message } from '../../src/protocol/resources.js'
import {
  asMessage, connectUntilTeardown, createRoom, delay, HIGH_FRAME_RATE, range, readWholeHistory, roomLastSeq, sameSeqs, waitUntil, type Account
} from '../helpers/chat.js'
import { eachBackend, startTestServer } from '../helpers/server.js'
import { barrier, connect, messageEvents, receivedAcks, receivedErrors, type Frame, type TestSocket } from '../helpers/socket.js'

// The message guarantees of API.md ("WebSocket /ws" and "Guarantees") seen from clients:
// idempotent clientMsgId, gapless per-room seq under concurrent senders, events only for
// committed messages, and private-room membership enforced by the write itself.

async function join (t: Test, socket: TestSocket, room: string): Promise<Frame> {
  const reply = await socket.request({ type: 'join', room })
  t.equal(reply.type, 'joined', `joined ${room}: ${JSON.stringify(reply).slice(0, 200)}`)
  return reply
}

/** The ack fields a repeat must reproduce exactly. */
function ackOf (frame: Frame): Record<string, unknown> {
  return { type: frame.type, room: frame.room, id: frame.id, seq: frame.seq, clientMsgId: frame.clientMsgId, createdAt: frame.createdAt }
}

function isStrictlyIncreasing (seqs: number[]): boolean {
  return seqs.every((seq, i) => i === 0 || seq > (seqs[i - 1] as number))
}

eachBackend(t, async (t, backend) => {
  const { api, baseUrl } = await startTestServer(t, backend, { env: HIGH_FRAME_RATE })

  /** A socket closed at teardown (the server's teardown would close it too, with 1001). */
  const open = async (user: Account): Promise<TestSocket> => await connectUntilTeardown(t, baseUrl, user.token)

  t.test('idempotency: the same clientMsgId again gets the original ack, nothing is stored or sent twice', async (t) => {
    const alice = await api.user('alice')
    const bob = await api.user('bob')
    await createRoom(api, alice, 'idem')
    await createRoom(api, alice, 'idem-other')
    const a1 = await open(alice)
    const b = await open(bob)
    await join(t, a1, 'idem')
    await join(t, a1, 'idem-other')
    await join(t, b, 'idem')
    await join(t, b, 'idem-other')

    const first = await a1.request({ type: 'message', room: 'idem', body: 'hello once', clientMsgId: 'c-1' })
    t.match(first, { type: 'ack', room: 'idem', seq: 1, clientMsgId: 'c-1' }, 'the first send is acked with seq 1')
    const event = await b.next((f) => f.type === 'message' && f.clientMsgId === 'c-1')
    t.match(event, { room: 'idem', id: first.id, seq: 1, userId: alice.id, body: 'hello once' }, 'bob gets the message once')

    // The same key again, from the same socket, even with another body: the original ack.
    const again = await a1.request({ type: 'message', room: 'idem', body: 'a different body', clientMsgId: 'c-1' })
    t.strictSame(ackOf(again), ackOf(first), 'a repeat from the same socket: the original ack (id, seq, createdAt)')
    // From another socket of the same user, and from a socket opened later: still the original.
    const a2 = await open(alice)
    await join(t, a2, 'idem')
    const fromA2 = await a2.request({ type: 'message', room: 'idem', body: 'hello once', clientMsgId: 'c-1' })
    t.strictSame(ackOf(fromA2), ackOf(first), 'a repeat from another socket of the same user: the original ack')
    await a2.close()

    // Absence of a second event: a pong to bob comes after anything published to him before it.
    await barrier(b)
    t.equal(messageEvents(b, 'idem').filter((f) => f.clientMsgId === 'c-1').length, 1, 'bob saw exactly one message event for c-1')
    t.equal(messageEvents(a1, 'idem').length, 0, 'the sender never gets its own message as an event')

    // The same clientMsgId from another user is another message; so is the same key in another room.
    const bobs = await b.request({ type: 'message', room: 'idem', body: 'bob reuses the key', clientMsgId: 'c-1' })
    t.match(bobs, { type: 'ack', room: 'idem', seq: 2, clientMsgId: 'c-1' }, 'another user, same key: a new message with the next seq')
    t.not(bobs.id, first.id, 'another user, same key: a new id')
    const elsewhere = await a1.request({ type: 'message', room: 'idem-other', body: 'same key, other room', clientMsgId: 'c-1' })
    t.match(elsewhere, { type: 'ack', room: 'idem-other', seq: 1, clientMsgId: 'c-1' }, 'another room, same key: a new message, seq 1 there')
    t.not(elsewhere.id, first.id, 'another room, same key: a new id')
    t.match(await a1.next((f) => f.type === 'message' && f.room === 'idem'), { id: bobs.id, seq: 2, userId: bob.id }, 'alice gets bob\'s message')
    t.match(await b.next((f) => f.type === 'message' && f.room === 'idem-other'), { id: elsewhere.id, seq: 1 }, 'bob gets alice\'s message in the other room')

    const stored = await readWholeHistory(api, alice.token, 'idem')
    t.strictSame(stored.map((m) => [m.seq, m.userId, m.body, m.clientMsgId]), [
      [1, alice.id, 'hello once', 'c-1'],
      [2, bob.id, 'bob reuses the key', 'c-1']
    ], 'history of idem: the first send once, then bob\'s')
    t.strictSame(stored[0], { ...asMessage(event) }, 'the stored message is the one that was sent as an event')
    t.equal(stored[0]?.createdAt, first.createdAt, 'the ack\'s createdAt is the stored one')
    t.strictSame((await readWholeHistory(api, alice.token, 'idem-other')).map((m) => [m.seq, m.id]), [[1, elsewhere.id]], 'history of idem-other')
    t.equal(await roomLastSeq(api, alice.token, 'idem'), 2, 'repeats did not use up seqs')
    t.strictSame(receivedErrors(a1), [], 'no errors for alice')
    t.strictSame(receivedErrors(b), [], 'no errors for bob')
  })

  t.test('idempotency under concurrency: copies in one batch and across batches, from two sockets of one user', async (t) => {
    // Batches of three: thirty copies of a key from two sockets, sent at once, are spread over
    // ten or more group commits, each holding repeats of the key.
    const small = await startTestServer(t, backend, { env: { ...HIGH_FRAME_RATE, WRITE_MAX_BATCH: '3' } })
    const alice = await small.api.user('alice')
    const bob = await small.api.user('bob')
    await createRoom(small.api, alice, 'race')
    const sockets: TestSocket[] = []
    for (const user of [alice, alice, bob]) {
      const socket = await connect(small.baseUrl, user.token)
      t.teardown(async () => { await socket.close() })
      await join(t, socket, 'race')
      sockets.push(socket)
    }
    const [a1, a2, b] = sockets as [TestSocket, TestSocket, TestSocket]

    const COPIES = 15
    const KEYS = ['k-1', 'k-2', 'k-3']
    // Each socket sends runs of one key (repeats inside one batch of three, and over the next
    // batches), both sockets at once (their copies meet in the same batches as they interleave).
    for (const key of KEYS) {
      for (let i = 0; i < COPIES; i++) {
        a1.send({ type: 'message', room: 'race', body: `body of ${key}`, clientMsgId: key, ref: `a1-${key}-${i}` })
        a2.send({ type: 'message', room: 'race', body: `body of ${key}`, clientMsgId: key, ref: `a2-${key}-${i}` })
      }
    }
    // A bob message with the same keys: different user, different messages.
    b.send({ type: 'message', room: 'race', body: 'bob k-1', clientMsgId: 'k-1', ref: 'b-k-1' })
    const expected = COPIES * KEYS.length
    await waitUntil(() => receivedAcks(a1).length + receivedErrors(a1).length >= expected && receivedAcks(a2).length + receivedErrors(a2).length >= expected && receivedAcks(b).length >= 1,
      20_000, () => `a1 ${receivedAcks(a1).length}, a2 ${receivedAcks(a2).length}, b ${receivedAcks(b).length} acks`)
    t.strictSame([...receivedErrors(a1), ...receivedErrors(a2), ...receivedErrors(b)], [], 'no errors')

    const stored = await readWholeHistory(small.api, alice.token, 'race')
    t.equal(stored.length, KEYS.length + 1, 'one stored message per key of alice, plus bob\'s')
    sameSeqs(t, stored.map((m) => m.seq).sort((x, y) => x - y), range(1, KEYS.length + 1), 'the stored seqs are 1..4: no seq was burned by a repeat')
    for (const key of KEYS) {
      const rows = stored.filter((m) => m.clientMsgId === key && m.userId === alice.id)
      t.equal(rows.length, 1, `${key}: stored once for alice`)
      const row = rows[0]
      const all = [...receivedAcks(a1), ...receivedAcks(a2)].filter((f) => f.clientMsgId === key)
      t.equal(all.length, 2 * COPIES, `${key}: every copy was acked`)
      const distinct = new Set(all.map((f) => JSON.stringify(ackOf(f))))
      t.equal(distinct.size, 1, `${key}: every ack is identical`, { distinct: [...distinct] })
      if (row !== undefined) {
        t.strictSame(ackOf(all[0] ?? { type: 'none' }), { type: 'ack', room: 'race', id: row.id, seq: row.seq, clientMsgId: key, createdAt: row.createdAt }, `${key}: the acks name the stored message`)
      }
    }
    const bobAck = receivedAcks(b)[0]
    const bobRow = stored.find((m) => m.userId === bob.id)
    t.match(bobAck, { id: bobRow?.id, seq: bobRow?.seq, clientMsgId: 'k-1' }, 'bob\'s k-1 is its own message')

    // Events: bob sees each of alice's messages once; alice's two sockets together see each of
    // them once (the copy that was stored first is the sender; the other socket is a receiver).
    await Promise.all(sockets.map(barrier))
    for (const key of KEYS) {
      const ofAlice = (f: Frame): boolean => f.clientMsgId === key && f.userId === alice.id
      t.equal(messageEvents(b, 'race').filter(ofAlice).length, 1, `${key}: bob got exactly one event`)
      t.equal(messageEvents(a1, 'race').filter(ofAlice).length + messageEvents(a2, 'race').filter(ofAlice).length, 1, `${key}: alice's other socket got exactly one event, her sending socket none`)
    }
    t.equal(messageEvents(a1, 'race').filter((f) => f.userId === bob.id).length, 1, 'a1 got bob\'s message once')
    t.equal(messageEvents(a2, 'race').filter((f) => f.userId === bob.id).length, 1, 'a2 got bob\'s message once')
  })

  t.test('gapless seq: five sockets flooding one room', async (t) => {
    const SENDERS = 5
    const EACH = 200
    const N = SENDERS * EACH
    const users: Account[] = []
    for (let i = 0; i < SENDERS; i++) users.push(await api.user(`flood${i}`))
    await createRoom(api, users[0] as Account, 'flood')
    const sockets: TestSocket[] = []
    for (const user of users) {
      const socket = await open(user)
      await join(t, socket, 'flood')
      sockets.push(socket)
    }
    sockets.forEach((socket, i) => {
      for (let k = 0; k < EACH; k++) socket.send({ type: 'message', room: 'flood', body: `from ${i}: #${k}`, clientMsgId: `s${i}-${k}` })
    })
    await waitUntil(() => sockets.every((s) => receivedAcks(s).length + receivedErrors(s).length >= EACH), 30_000,
      () => sockets.map((s) => receivedAcks(s).length).join(', ') + ' acks')
    t.strictSame(sockets.flatMap(receivedErrors), [], 'no errors')
    // Each socket also receives the other senders' messages.
    await waitUntil(() => sockets.every((s) => messageEvents(s, 'flood').length >= N - EACH), 15_000,
      () => sockets.map((s) => messageEvents(s, 'flood').length).join(', ') + ' events')

    const allAcks = sockets.flatMap((s) => receivedAcks(s))
    const seqs = allAcks.map((f) => f.seq as number)
    t.equal(new Set(seqs).size, seqs.length, 'every ack has a distinct seq')
    sameSeqs(t, [...seqs].sort((x, y) => x - y), range(1, N), `the acks together are exactly 1..${N}`)
    sockets.forEach((socket, i) => {
      const own = receivedAcks(socket)
      sameSeqs(t, own.map((f) => f.clientMsgId as string), range(0, EACH - 1).map((k) => `s${i}-${k}`), `socket ${i}: one ack per message, in sending order`)
      t.ok(isStrictlyIncreasing(own.map((f) => f.seq as number)), `socket ${i}: its messages were sequenced in the order it sent them`)
      const seen = messageEvents(socket, 'flood').map((f) => f.seq as number)
      t.ok(isStrictlyIncreasing(seen), `socket ${i}: message events arrive in strictly increasing seq`)
      t.equal(messageEvents(socket, 'flood').filter((f) => f.userId === users[i]?.id).length, 0, `socket ${i}: none of its own messages as events`)
      sameSeqs(t, [...seen, ...own.map((f) => f.seq as number)].sort((x, y) => x - y), range(1, N), `socket ${i}: events plus own acks are exactly 1..${N}, no gap, no repeat`)
    })

    const stored = await readWholeHistory(api, users[0]?.token ?? '', 'flood')
    sameSeqs(t, stored.map((m) => m.seq), range(1, N), 'history is 1..N in seq order')
    const bySeq = new Map(stored.map((m) => [m.seq, m]))
    let mismatched = 0
    sockets.forEach((socket, i) => {
      for (const ack of receivedAcks(socket)) {
        const row = bySeq.get(ack.seq)
        const k = String(ack.clientMsgId).split('-')[1]
        const want = { id: ack.id, room: 'flood', seq: ack.seq, userId: users[i]?.id, username: users[i]?.username, body: `from ${i}: #${k}`, clientMsgId: ack.clientMsgId, createdAt: ack.createdAt }
        if (JSON.stringify(row) !== JSON.stringify(want)) {
          if (mismatched++ === 0) t.strictSame(row, want, `first history row that does not match its ack (seq ${ack.seq})`)
        }
      }
    })
    t.equal(mismatched, 0, 'every history row matches its ack (id, seq, createdAt, clientMsgId) and what was sent (body, author)')
    let unmatchedEvents = 0
    for (const socket of sockets) {
      for (const frame of messageEvents(socket, 'flood')) {
        if (JSON.stringify(bySeq.get(frame.seq)) !== JSON.stringify(asMessage(frame))) {
          if (unmatchedEvents++ === 0) t.strictSame(asMessage(frame), bySeq.get(frame.seq), `first event not matching history (seq ${frame.seq})`)
        }
      }
    }
    t.equal(unmatchedEvents, 0, 'every message event is a stored message, field for field')
    t.equal(await roomLastSeq(api, users[0]?.token ?? '', 'flood'), N, 'the room\'s lastSeq is N')
  })

  t.test('several rooms at once keep independent sequences from 1', async (t) => {
    const ROOMS = ['multi-a', 'multi-b', 'multi-c']
    const EACH = 100
    const users: Account[] = []
    for (let i = 0; i < 3; i++) users.push(await api.user(`multi${i}`))
    for (const room of ROOMS) await createRoom(api, users[0] as Account, room)
    const sockets: TestSocket[] = []
    for (const user of users) {
      const socket = await open(user)
      for (const room of ROOMS) await join(t, socket, room)
      sockets.push(socket)
    }
    // Round-robin over the rooms, so every group commit holds all three.
    sockets.forEach((socket, i) => {
      for (let k = 0; k < EACH; k++) {
        for (const room of ROOMS) socket.send({ type: 'message', room, body: `${room} from ${i}: #${k}`, clientMsgId: `m${i}-${k}` })
      }
    })
    const perRoom = users.length * EACH
    await waitUntil(() => sockets.every((s) => receivedAcks(s).length + receivedErrors(s).length >= EACH * ROOMS.length), 30_000,
      () => sockets.map((s) => receivedAcks(s).length).join(', ') + ' acks')
    t.strictSame(sockets.flatMap(receivedErrors), [], 'no errors')
    await waitUntil(() => sockets.every((s) => ROOMS.every((room) => messageEvents(s, room).length >= perRoom - EACH)), 15_000,
      () => sockets.map((s) => ROOMS.map((room) => messageEvents(s, room).length).join('/')).join(', ') + ' events')
    for (const room of ROOMS) {
      const seqs = sockets.flatMap((s) => receivedAcks(s, room)).map((f) => f.seq as number).sort((x, y) => x - y)
      sameSeqs(t, seqs, range(1, perRoom), `${room}: the acks are exactly 1..${perRoom}`)
      sockets.forEach((socket, i) => {
        const seen = messageEvents(socket, room).map((f) => f.seq as number)
        t.ok(isStrictlyIncreasing(seen), `${room}, socket ${i}: events in strictly increasing seq`)
        sameSeqs(t, [...seen, ...receivedAcks(socket, room).map((f) => f.seq as number)].sort((x, y) => x - y), range(1, perRoom), `${room}, socket ${i}: events plus own acks are 1..${perRoom}`)
      })
      const stored = await readWholeHistory(api, users[0]?.token ?? '', room)
      sameSeqs(t, stored.map((m) => m.seq), range(1, perRoom), `${room}: history is 1..${perRoom}`)
      t.ok(stored.every((m) => m.room === room && m.body.startsWith(`${room} from `)), `${room}: history holds only its own messages`)
    }
  })

  t.test('a message event or an ack is only ever for a message history already has', async (t) => {
    const writer = await api.user('writer')
    const reader = await api.user('reader')
    await createRoom(api, writer, 'committed')
    const sender = await open(writer)
    const observer = await open(reader)
    await join(t, sender, 'committed')
    await join(t, observer, 'committed')
    // The moment a frame arrives, ask history for its seq: it must be there already.
    const checks: Array<Promise<{ kind: string, seq: number, found: Message | undefined, frame: Frame }>> = []
    const lookUp = (kind: string, frame: Frame): void => {
      checks.push((async () => {
        const res = await api.request<{ messages: Message[] }>('GET', `/rooms/committed/messages?after=${(frame.seq as number) - 1}&limit=1`, { token: reader.token })
        return { kind, seq: frame.seq as number, found: res.body?.messages?.[0], frame }
      })())
    }
    observer.ws.on('message', (data) => {
      const frame = JSON.parse((data as Buffer).toString()) as Frame
      if (frame.type === 'message') lookUp('event', frame)
    })
    sender.ws.on('message', (data) => {
      const frame = JSON.parse((data as Buffer).toString()) as Frame
      if (frame.type === 'ack') lookUp('ack', frame)
    })
    const COUNT = 100
    for (let k = 0; k < COUNT; k++) {
      sender.send({ type: 'message', room: 'committed', body: `committed #${k}`, clientMsgId: `c${k}` })
      if (k % 10 === 9) await delay(3)
    }
    await waitUntil(() => receivedAcks(sender).length + receivedErrors(sender).length >= COUNT && messageEvents(observer, 'committed').length >= COUNT, 15_000,
      () => `${receivedAcks(sender).length} acks, ${messageEvents(observer, 'committed').length} events`)
    const results = await Promise.all(checks)
    t.equal(results.length, 2 * COUNT, 'one look-up per ack and per event')
    const missing = results.filter((r) => r.found?.seq !== r.seq || r.found.id !== r.frame.id)
    t.strictSame(missing.map((r) => `${r.kind} ${r.seq}`), [], 'history had every message when its event or ack arrived')
  })

  t.test('private rooms: non-members cannot join or write; a member removed after joining cannot write', async (t) => {
    const owner = await api.user('owner')
    const member = await api.user('member')
    const leaver = await api.user('leaver')
    const outsider = await api.user('outsider')
    await createRoom(api, owner, 'vault', true)
    for (const user of [member, leaver]) {
      const added = await api.request('POST', '/rooms/vault/members', { token: owner.token, json: { userId: user.id } })
      t.equal(added.status, 204, `${user.username} added`)
    }
    const os = await open(owner)
    const ms = await open(member)
    const ls = await open(leaver)
    const xs = await open(outsider)
    await join(t, os, 'vault')
    await join(t, ms, 'vault')
    await join(t, ls, 'vault')
    const opening = await os.request({ type: 'message', room: 'vault', body: 'members only', clientMsgId: 'o-1' })
    t.match(opening, { type: 'ack', seq: 1 }, 'the owner writes seq 1')

    // A non-member: join refused, a message without a join refused.
    t.match(await xs.request({ type: 'join', room: 'vault' }), { type: 'error', code: 'forbidden' }, 'a non-member cannot join')
    t.match(await xs.request({ type: 'message', room: 'vault', body: 'let me in', clientMsgId: 'x-1' }), { type: 'error', code: 'forbidden' }, 'a non-member cannot write without joining')
    // Join and message back to back, without waiting for the (refused) join: the write itself says no.
    xs.send({ type: 'join', room: 'vault', ref: 'xj' })
    xs.send({ type: 'message', room: 'vault', body: 'sneaking in', clientMsgId: 'x-2', ref: 'xm' })
    t.match(await xs.next((f) => f.ref === 'xj'), { type: 'error', code: 'forbidden' }, 'the join is refused')
    t.match(await xs.next((f) => f.ref === 'xm'), { type: 'error', code: 'forbidden' }, 'the message sent along with it is refused')
    await barrier(xs)
    t.strictSame(messageEvents(xs, 'vault'), [], 'the outsider received nothing from the room')

    // Removed by the creator via REST while joined.
    const removed = await api.request('DELETE', `/rooms/vault/members/${member.id}`, { token: owner.token })
    t.equal(removed.status, 204, 'the owner removes the member')
    t.strictSame(await ms.next('left'), { type: 'left', room: 'vault', reason: 'removed' }, 'the removed member\'s socket is told it left the room')
    t.match(await ms.request({ type: 'message', room: 'vault', body: 'still here?', clientMsgId: 'm-1' }), { type: 'error', code: 'forbidden' }, 'a removed member gets forbidden')
    // Left by themself via REST while joined.
    const left = await api.request('DELETE', `/rooms/vault/members/${leaver.id}`, { token: leaver.token })
    t.equal(left.status, 204, 'a member removes themself')
    t.match(await ls.request({ type: 'message', room: 'vault', body: 'one more', clientMsgId: 'l-1' }), { type: 'error', code: 'forbidden' }, 'a member who left gets forbidden')
    t.match(await ls.request({ type: 'message', room: 'vault', body: 'without a key' }), { type: 'error', code: 'forbidden' }, 'also without a clientMsgId')

    await barrier(os)
    t.strictSame(messageEvents(os, 'vault'), [], 'the owner was sent none of the refused messages')
    const stored = await readWholeHistory(api, owner.token, 'vault')
    t.strictSame(stored.map((m) => [m.seq, m.userId, m.body]), [[1, owner.id, 'members only']], 'only the owner\'s message is stored')
    t.equal(await roomLastSeq(api, owner.token, 'vault'), 1, 'refused messages used no seq')
    const next = await os.request({ type: 'message', room: 'vault', body: 'and on we go' })
    t.match(next, { type: 'ack', seq: 2, clientMsgId: null }, 'the next message is seq 2: no gap')
    await Promise.all([barrier(ms), barrier(ls)])
    t.strictSame(messageEvents(ms, 'vault').map((f) => f.seq), [1], 'a removed member receives nothing more from the private room')
    t.strictSame(messageEvents(ls, 'vault').map((f) => f.seq), [1], 'nor does one who left it')
  })
})
