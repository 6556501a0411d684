// Three nodes on one Postgres and one Redis behave as one server (API.md, Guarantees: "messages,
// typing and presence reach sockets on every node, and presence is the union"). Users sit on
// different nodes; each case also has a socket on the sender's own node, so a failure says
// whether the harness or the crossing broke.
import t from 'tap'
import { createRoom, delay, pickFields, readWholeHistory, type Account } from '../helpers/chat.js'
import { clusterSkip, startCluster, userStatusWithin, type Cluster, type ClusterNode } from '../helpers/cluster.js'
import { framesOf, joinOn, seqsOf, settle, type JoinedSocket } from '../helpers/cluster-traffic.js'
import { barrier, drainUntilPong, nextOrNull, type Frame, type TestSocket } from '../helpers/socket.js'

const MESSAGE_FIELDS = ['type', 'id', 'room', 'seq', 'userId', 'username', 'body', 'clientMsgId', 'createdAt'] as const
/** How long a frame that should cross nodes may take. */
const CROSS_MS = 4000
/** How long to keep listening for a duplicate after the one expected frame came. */
const QUIET_MS = 1500

const where = (j: JoinedSocket, sender: ClusterNode): string => `${j.user.username} on ${j.node.name}${j.node === sender ? ' (same node)' : ''}`

/** Waits QUIET_MS, then a ping round trip on each socket: whatever was on its way has arrived. */
async function settleQuiet (sockets: readonly TestSocket[]): Promise<void> {
  await delay(QUIET_MS)
  await Promise.all(sockets.map(async (s) => await barrier(s).catch(() => {})))
}

const sortOnline = (online: unknown): Array<{ userId: string, username: string }> =>
  Array.isArray(online) ? [...online].map((o) => ({ userId: String(o?.userId), username: String(o?.username) })).sort((a, b) => Number(a.userId) - Number(b.userId)) : []
const onlineOf = (...users: Account[]): Array<{ userId: string, username: string }> => sortOnline(users.map((u) => ({ userId: u.id, username: u.username })))

t.test('three nodes behave as one server', { skip: clusterSkip() }, async (t) => {
  const cluster: Cluster = await startCluster(t, { nodes: 3 })
  const [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode]
  const [alice, bob, carol, dave, erin] = await cluster.users(['alice', 'bob', 'carol', 'dave', 'erin']) as [Account, Account, Account, Account, Account]

  t.test('a message sent on one node reaches the joined sockets of every node; the sender gets ack only', async (t) => {
    const room = 'x.messages'
    await createRoom(n1.api, alice, room)
    const sockets = [
      await joinOn(t, n1, alice, room),
      await joinOn(t, n2, bob, room),
      await joinOn(t, n3, carol, room),
      await joinOn(t, n1, dave, room)
    ]
    // One sender per node, at once: alice on 1, bob on 2, carol on 3.
    const senders = sockets.slice(0, 3)
    const acks = await Promise.all(senders.map(async (sender) =>
      await sender.socket.request({ type: 'message', room, body: `hello from ${sender.node.name}`, clientMsgId: `cross-${sender.user.username}` })))
    senders.forEach((sender, i) => t.equal(acks[i]?.type, 'ack', `${sender.user.username} on ${sender.node.name}: acked`))
    const expected = senders.map((sender, i) => ({
      type: 'message', id: acks[i]?.id, room, seq: acks[i]?.seq, userId: sender.user.id, username: sender.user.username,
      body: `hello from ${sender.node.name}`, clientMsgId: `cross-${sender.user.username}`, createdAt: acks[i]?.createdAt
    }))
    // Every receiver waits for every other sender's message together: one bounded wait in all.
    const got = await Promise.all(sockets.map(async (r) => await Promise.all(senders.map(async (sender, i) =>
      sender === r ? null : await nextOrNull(r.socket, (f) => f.type === 'message' && f.room === room && f.seq === acks[i]?.seq, CROSS_MS)))))
    sockets.forEach((r, ri) => senders.forEach((sender, si) => {
      if (sender === r) return
      t.strictSame(pickFields(got[ri]?.[si] ?? undefined, MESSAGE_FIELDS), expected[si], `seq ${String(acks[si]?.seq)} from ${sender.node.name} reaches ${where(r, sender.node)} as API.md's message`)
    }))
    for (const [i, sender] of senders.entries()) {
      const own = (await drainUntilPong(sender.socket)).filter((f) => f.type === 'message' && f.room === room && f.seq === acks[i]?.seq)
      t.equal(own.length, 0, `${sender.user.username} gets no message event for its own message`)
    }
    await settleQuiet(sockets.map((s) => s.socket))
    for (const s of sockets) {
      const seqs = seqsOf(s.socket, room)
      t.equal(new Set(seqs).size, seqs.length, `${s.user.username} on ${s.node.name}: no seq twice`)
    }
    for (const node of cluster.nodes) {
      const history = await readWholeHistory(node.api, alice.token, room)
      t.strictSame(history.map((m) => [m.id, m.seq]), [...acks].sort((x, y) => x.seq - y.seq).map((a) => [a.id, a.seq]), `history on ${node.name} is exactly the acked messages, in seq order`)
    }
  })

  t.test('typing on node 2 reaches nodes 1 and 3; an unrefreshed start ends once with typing false after ~5 s', async (t) => {
    const room = 'x.typing'
    await createRoom(n1.api, alice, room)
    const typer = await joinOn(t, n2, bob, room)
    const observers = [await joinOn(t, n1, alice, room), await joinOn(t, n3, carol, room), await joinOn(t, n2, dave, room)]
    await Promise.all([typer, ...observers].map(async (s) => await barrier(s.socket)))
    const isBobTyping = (typing: boolean) => (f: Frame): boolean => f.type === 'typing' && f.room === room && f.userId === bob.id && f.typing === typing

    const started = Date.now()
    typer.socket.send({ type: 'typing', room, typing: true })
    const starts = await Promise.all(observers.map(async (o) => await nextOrNull(o.socket, isBobTyping(true), CROSS_MS)))
    observers.forEach((o, i) => {
      t.strictSame(pickFields(starts[i] ?? undefined, ['type', 'room', 'userId', 'username', 'typing']), { type: 'typing', room, userId: bob.id, username: bob.username, typing: true }, `typing true reaches ${where(o, n2)}`)
    })
    // Not refreshed: the server says false on its own, once, 5 s or a little more after the start.
    const stops = await Promise.all(observers.map(async (o) => {
      const frame = await nextOrNull(o.socket, isBobTyping(false), Math.max(1, started + 9000 - Date.now()))
      return frame === null ? null : Date.now() - started
    }))
    observers.forEach((o, i) => {
      const after = stops[i]
      t.ok(after !== null && after !== undefined && after >= 4500 && after <= 7500, `${where(o, n2)}: typing false from the server 4.5-7.5 s after the start (after ${String(after)} ms)`)
    })
    await settleQuiet([typer, ...observers].map((s) => s.socket))
    for (const o of observers) {
      t.equal(framesOf(o.socket, 'typing', room, { userId: bob.id, typing: true }).length, 1, `${where(o, n2)}: typing true once`)
      t.equal(framesOf(o.socket, 'typing', room, { userId: bob.id, typing: false }).length, 1, `${where(o, n2)}: typing false once`)
    }
    t.equal(framesOf(typer.socket, 'typing', room).length, 0, 'the typer hears nothing of its own typing')
  })

  t.test('presence is the union of the nodes: one online, one offline per other socket, REST agrees everywhere', async (t) => {
    const room = 'x.presence'
    await createRoom(n1.api, alice, room)
    const erinOn1 = await joinOn(t, n1, erin, room)
    const bobOn2 = await joinOn(t, n2, bob, room)
    await Promise.all([erinOn1, bobOn2].map(async (s) => await barrier(s.socket)))
    const isAlice = (status: string) => (f: Frame): boolean => f.type === 'presence' && f.room === room && f.userId === alice.id && f.status === status

    // alice's first socket joins on node 1.
    const aliceOn1 = await joinOn(t, n1, alice, room)
    const onlines = await Promise.all([erinOn1, bobOn2].map(async (o) => await nextOrNull(o.socket, isAlice('online'), CROSS_MS)))
    for (const [i, o] of [erinOn1, bobOn2].entries()) {
      const frame = onlines[i]
      t.strictSame(pickFields(frame ?? undefined, ['type', 'room', 'userId', 'username', 'status']), { type: 'presence', room, userId: alice.id, username: alice.username, status: 'online' }, `${where(o, n1)}: presence online for alice`)
    }
    // Her second socket, on node 3, is not a new arrival.
    const aliceOn3 = await joinOn(t, n3, alice, room)
    const carolOn3 = await joinOn(t, n3, carol, room)
    t.strictSame(sortOnline(carolOn3.joined.online), onlineOf(alice, bob, carol, erin), 'joined.online on node 3 lists the users joined on nodes 1, 2 and 3 (the union), each once')
    // bob and erin hear carol arrive, wherever they are; alice's sockets too.
    const hearCarol = [erinOn1, bobOn2, aliceOn1, aliceOn3]
    const carolOnline = await Promise.all(hearCarol.map(async (o) => await nextOrNull(o.socket, (f) => f.type === 'presence' && f.room === room && f.userId === carol.id && f.status === 'online', CROSS_MS)))
    hearCarol.forEach((o, i) => t.ok(carolOnline[i] !== null, `${where(o, n3)}: presence online for carol`))

    const everyone = [erinOn1, bobOn2, aliceOn1, aliceOn3, carolOn3]
    await settleQuiet(everyone.map((s) => s.socket))
    for (const o of [erinOn1, bobOn2]) t.equal(o.socket.received.filter(isAlice('online')).length, 1, `${where(o, n1)}: presence online for alice once, though she joined on two nodes`)
    t.equal(carolOn3.socket.received.filter(isAlice('online')).length, 0, 'carol, who joined after alice, gets no presence event for her (joined.online had her)')

    for (const node of cluster.nodes) {
      const res = await node.api.request('GET', `/rooms/${room}/presence`, { token: bob.token })
      t.strictSame({ status: res.status, room: res.body?.room, online: sortOnline(res.body?.online) }, { status: 200, room, online: onlineOf(alice, bob, carol, erin) }, `GET /rooms/:id/presence on ${node.name}: the union`)
      const user = await node.api.request('GET', `/users/${alice.id}/presence`, { token: bob.token })
      t.equal(user.body?.status, 'online', `GET /users/:alice/presence on ${node.name}: online`)
    }

    // alice leaves on node 1: she still has a socket in the room on node 3, so nobody hears she left.
    t.equal((await aliceOn1.socket.request({ type: 'leave', room })).type, 'left', 'alice leaves on node 1')
    await settleQuiet(everyone.map((s) => s.socket))
    for (const o of [erinOn1, bobOn2, carolOn3]) t.equal(o.socket.received.filter(isAlice('offline')).length, 0, `${where(o, n1)}: no presence offline while alice's socket on node 3 is still joined`)
    for (const node of cluster.nodes) {
      const res = await node.api.request('GET', `/rooms/${room}/presence`, { token: bob.token })
      t.strictSame(sortOnline(res.body?.online), onlineOf(alice, bob, carol, erin), `GET /rooms/:id/presence on ${node.name}: alice still listed`)
    }

    // Her last socket leaves: one offline per other socket, not one per node.
    t.equal((await aliceOn3.socket.request({ type: 'leave', room })).type, 'left', 'alice leaves on node 3')
    const observers = [erinOn1, bobOn2, carolOn3]
    const offlines = await Promise.all(observers.map(async (o) => await nextOrNull(o.socket, isAlice('offline'), CROSS_MS)))
    for (const [i, o] of observers.entries()) {
      const frame = offlines[i]
      t.strictSame(pickFields(frame ?? undefined, ['type', 'room', 'userId', 'username', 'status']), { type: 'presence', room, userId: alice.id, username: alice.username, status: 'offline' }, `${where(o, n3)}: presence offline for alice`)
    }
    await settleQuiet(everyone.map((s) => s.socket))
    for (const o of observers) t.equal(o.socket.received.filter(isAlice('offline')).length, 1, `${where(o, n3)}: presence offline for alice exactly once`)

    for (const node of cluster.nodes) {
      const res = await node.api.request('GET', `/rooms/${room}/presence`, { token: bob.token })
      t.strictSame(sortOnline(res.body?.online), onlineOf(bob, carol, erin), `GET /rooms/:id/presence on ${node.name}: alice gone`)
    }
    // User presence is about open sockets (joined anywhere or not): close hers, then every node says offline.
    await Promise.all([aliceOn1, aliceOn3].map(async (s) => await s.socket.close()))
    const statuses = await Promise.all(cluster.nodes.map(async (node) => await userStatusWithin(node, alice, bob, 'offline', 5000)))
    cluster.nodes.forEach((node, i) => t.equal(statuses[i], 'offline', `GET /users/:alice/presence on ${node.name}: offline once her sockets are closed`))
  })

  t.test('removed from a private room on node 1: the user\'s sockets on every node get left {reason: removed} and nothing more of it', async (t) => {
    const room = 'x.private'
    await createRoom(n1.api, alice, room, true)
    for (const member of [bob, carol]) {
      const res = await n1.api.request('POST', `/rooms/${room}/members`, { token: alice.token, json: { userId: member.id } })
      t.equal(res.status, 204, `alice adds ${member.username}`)
    }
    const owner = await joinOn(t, n1, alice, room)
    const witness = await joinOn(t, n2, carol, room)
    const bobs = [await joinOn(t, n1, bob, room), await joinOn(t, n2, bob, room), await joinOn(t, n3, bob, room)]

    const before = await owner.socket.request({ type: 'message', room, body: 'before the removal', clientMsgId: 'private-0' })
    t.equal(before.type, 'ack', 'a message before the removal is acked')
    const gotBefore = await Promise.all(bobs.map(async (b) => await nextOrNull(b.socket, (f) => f.type === 'message' && f.room === room && f.seq === before.seq, CROSS_MS)))
    for (const [i, b] of bobs.entries()) {
      t.ok(gotBefore[i] !== null, `before the removal, bob on ${b.node.name} gets the room's messages${b.node === n1 ? ' (same node)' : ''}`)
    }

    const removed = await n1.api.request('DELETE', `/rooms/${room}/members/${bob.id}`, { token: alice.token })
    t.equal(removed.status, 204, 'alice removes bob on node 1')
    const lefts = await Promise.all(bobs.map(async (b) => await nextOrNull(b.socket, (f) => f.type === 'left' && f.room === room, CROSS_MS)))
    for (const [i, b] of bobs.entries()) {
      t.strictSame(pickFields(lefts[i] ?? undefined, ['type', 'room', 'reason']), { type: 'left', room, reason: 'removed' }, `bob on ${b.node.name}${b.node === n1 ? ' (same node)' : ''}: left {room, reason: removed}`)
    }

    // More traffic from node 1; carol on node 2 shows it flows, bob's sockets must not see it.
    const after: Frame[] = []
    for (let i = 1; i <= 5; i++) after.push(await owner.socket.request({ type: 'message', room, body: `after the removal ${i}`, clientMsgId: `private-${i}` }))
    t.ok(after.every((a) => a.type === 'ack'), 'messages after the removal are acked')
    const lastSeq = after[after.length - 1]?.seq as number
    const carolGotAll = await settle(() => seqsOf(witness.socket, room).includes(lastSeq), CROSS_MS)
    t.ok(carolGotAll, 'carol on node 2 gets the messages after the removal')
    await settleQuiet(bobs.map((b) => b.socket))
    for (const b of bobs) {
      const late = b.socket.received.filter((f) => f.type === 'message' && f.room === room && (f.seq as number) > (before.seq as number))
      t.strictSame(late.map((f) => f.seq), [], `bob on ${b.node.name}: no message of the room after the removal`)
      const refused = await b.socket.request({ type: 'message', room, body: 'still here?', clientMsgId: `bob-after-${b.node.index}` })
      t.equal(refused.code, 'forbidden', `bob on ${b.node.name}: sending to the room is forbidden now`)
    }
    const history = await readWholeHistory(n2.api, alice.token, room)
    t.equal(history.filter((m) => m.userId === bob.id).length, 0, 'nothing of bob\'s was stored after the removal')
  })
})
