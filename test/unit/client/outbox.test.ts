import t from 'tap'
import type { Message } from '../../../client/src/index.js'
import { FakeWebSocket, flush, makeClient, message } from './fakes.js'

t.beforeEach(() => { FakeWebSocket.sockets = [] })

async function joinedClient (lastSeq = 0): Promise<ReturnType<typeof makeClient> & { seen: Message[] }> {
  const made = makeClient()
  const room = made.client.room('r')
  const seen: Message[] = []
  room.on('message', (m) => seen.push(m))
  const joined = room.join()
  await flush()
  made.last().accept()
  made.last().answerJoin('r', lastSeq)
  await joined
  return { ...made, seen }
}

function ack (frame: Record<string, any>, seq: number): Record<string, any> {
  return { type: 'ack', room: frame.room, id: String(1000 + seq), seq, clientMsgId: frame.clientMsgId, createdAt: new Date(0).toISOString(), ref: frame.ref }
}

t.test('an unacked send is sent again after the reconnect, with the same clientMsgId, and resolves once', async (t) => {
  const { client, clock, last, seen } = await joinedClient(5)
  let settled = 0
  const sent = client.room('r').send('hello').then((a) => { settled++; return a })
  const first = last().frames('message')[0]!
  t.match(first, { room: 'r', body: 'hello' })
  t.type(first.clientMsgId, 'string')
  last().serverClose(1006)
  await clock.advance(1000)
  last().accept()
  t.equal(last().frames('message').length, 0, 'not resent before the room is joined again')
  last().answerJoin('r', 5)
  const again = last().frames('message')[0]!
  t.equal(again.clientMsgId, first.clientMsgId, 'resent with the same clientMsgId')
  last().deliver(ack(again, 6))
  last().deliver(ack(again, 6))
  const result = await sent
  await flush()
  t.equal(settled, 1, 'resolved once')
  t.match(result, { room: 'r', seq: 6, clientMsgId: first.clientMsgId })
  t.same(seen.map((m) => [m.seq, m.body, m.username]), [[6, 'hello', 'alice']], 'the own message is delivered once, from its ack')
  client.close()
})

t.test('a send stored before the crash is settled by its replay and not sent again', async (t) => {
  const { client, clock, last, seen } = await joinedClient(5)
  const sent = client.room('r').send('hello')
  const first = last().frames('message')[0]!
  last().serverClose(1006)
  await clock.advance(1000)
  last().accept()
  last().answerJoin('r', 6, [message('r', 6, { userId: '1', username: 'alice', body: 'hello', clientMsgId: first.clientMsgId })])
  t.match(await sent, { seq: 6, clientMsgId: first.clientMsgId })
  t.equal(last().frames('message').length, 0, 'nothing resent')
  t.same(seen.map((m) => m.seq), [6])
  client.close()
})

t.test('own acks and others\' messages interleave in seq order', async (t) => {
  const { client, last, seen } = await joinedClient(10)
  const sent = client.room('r').send('mine')
  const frame = last().frames('message')[0]!
  last().deliver(ack(frame, 12))
  t.same(seen.map((m) => m.seq), [], 'the ack for 12 waits for 11')
  last().deliver(message('r', 11))
  await sent
  t.same(seen.map((m) => `${m.seq} ${m.body}`), ['11 m11', '12 mine'])
  client.close()
})

t.test('a send before the join completes waits for it; sends keep their order', async (t) => {
  const { client, last } = makeClient()
  const room = client.room('r')
  void room.join()
  const a = room.send('a')
  const b = room.send('b')
  await flush()
  last().accept()
  t.equal(last().frames('message').length, 0, 'nothing sent before joined')
  last().answerJoin('r', 0)
  const frames = last().frames('message')
  t.same(frames.map((f) => f.body), ['a', 'b'])
  t.not(frames[0]!.clientMsgId, frames[1]!.clientMsgId, 'one clientMsgId per send')
  last().deliver(ack(frames[0]!, 1))
  last().deliver(ack(frames[1]!, 2))
  t.same([(await a).seq, (await b).seq], [1, 2])
  client.close()
})

t.test('errors a retry cannot fix reject; unavailable, rate_limited and internal are retried with the same clientMsgId', async (t) => {
  const { client, clock, last } = await joinedClient()
  const room = client.room('r')
  const bad = room.send('')
  const badFrame = last().frames('message')[0]!
  last().deliver({ type: 'error', code: 'bad_request', message: 'empty body', ref: badFrame.ref })
  await t.rejects(bad, { code: 'bad_request', message: 'empty body' })
  const ok = room.send('ok')
  let frame = last().frames('message')[1]!
  for (const code of ['unavailable', 'rate_limited', 'internal']) {
    last().deliver({ type: 'error', code, message: 'later', ref: frame.ref })
    const count = last().frames('message').length
    await clock.advance(25_000)
    t.equal(last().frames('message').length, count + 1, `${code}: sent again after a backoff`)
    frame = last().frames('message').at(-1)!
    t.equal(frame.clientMsgId, last().frames('message')[1]!.clientMsgId, 'same clientMsgId')
  }
  last().deliver(ack(frame, 1))
  t.equal((await ok).seq, 1)
  client.close()
})

t.test('read moves the read position; send without a join intent is refused', async (t) => {
  const { client, last } = await joinedClient(9)
  const room = client.room('r')
  const read = room.read(9)
  const frame = last().frames('read')[0]!
  t.match(frame, { room: 'r', seq: 9 })
  last().deliver({ type: 'read', room: 'r', readSeq: 9, ref: frame.ref })
  t.same(await read, { room: 'r', readSeq: 9 })
  t.equal(room.readSeq, 9)
  await t.rejects(client.room('other').send('x'), { code: 'forbidden' })
  client.close()
})
