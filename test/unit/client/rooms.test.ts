import t from 'tap'
import type { Message } from '../../../client/src/index.js'
import { FakeWebSocket, flush, makeClient, message } from './fakes.js'

t.beforeEach(() => { FakeWebSocket.sockets = [] })

t.test('joins made while connecting are queued and sent once; the room object is one per id', async (t) => {
  const { client, last } = makeClient()
  const room = client.room('general')
  t.equal(client.room('general'), room, 'same object for the same id')
  const joins = [room.join(), room.join()]
  await flush()
  last().accept()
  t.equal(last().frames('join').length, 1, 'one join frame for two join() calls')
  t.notOk('afterSeq' in last().frames('join')[0]!, 'a first join has no afterSeq')
  last().answerJoin('general', 41, [], [{ userId: '7', username: 'bob' }])
  await Promise.all(joins)
  t.equal(room.lastSeq, 41, 'the cursor starts at joined.lastSeq')
  t.same(room.online, [{ userId: '7', username: 'bob' }])
  await room.join()
  t.equal(last().frames('join').length, 1, 'join() of a joined room sends nothing')
  client.close()
})

t.test('resume: re-join with afterSeq = last delivered seq, replayed and repeated seqs delivered once, in order', async (t) => {
  const { client, clock, last } = makeClient()
  const room = client.room('r')
  const seen: number[] = []
  room.on('message', (m: Message) => seen.push(m.seq))
  const joined = room.join()
  await flush()
  last().accept()
  last().deliver(message('r', 10))
  last().answerJoin('r', 10)
  await joined
  last().deliver(message('r', 11))
  last().deliver(message('r', 12))
  last().deliver(message('r', 12))
  last().serverClose(1006)
  await clock.advance(1000)
  last().accept()
  t.equal(last().frames('join')[0]!.afterSeq, 12, 'the re-join resumes after the last delivered seq')
  last().answerJoin('r', 14, [message('r', 11), message('r', 12), message('r', 13), message('r', 14)])
  last().deliver(message('r', 14))
  last().deliver(message('r', 15))
  t.same(seen, [11, 12, 13, 14, 15], 'each seq once, in order (10 was before the cursor)')
  client.close()
})

t.test('ordering: a later seq waits for the gap; a gap that stays is filled by a re-join', async (t) => {
  const { client, clock, last } = makeClient({ gapTimeout: 2000 })
  const room = client.room('r')
  const seen: number[] = []
  room.on('message', (m: Message) => seen.push(m.seq))
  const joined = room.join()
  await flush()
  last().accept()
  last().answerJoin('r', 0)
  await joined
  last().deliver(message('r', 1))
  last().deliver(message('r', 3))
  t.same(seen, [1], '3 waits for 2')
  last().deliver(message('r', 2))
  t.same(seen, [1, 2, 3], 'the gap filled: delivered in order')
  last().deliver(message('r', 5))
  await clock.advance(1999)
  t.equal(last().frames('join').length, 1, 'no re-join before the gap timeout')
  await clock.advance(1)
  const rejoin = last().frames('join')[1]
  t.equal(rejoin?.afterSeq, 3, 'a gap that stays: re-join after the last delivered seq')
  last().answerJoin('r', 5, [message('r', 4), message('r', 5)])
  t.same(seen, [1, 2, 3, 4, 5])
  await clock.advance(10_000)
  t.equal(last().frames('join').length, 2, 'no further re-join once the gap is filled')
  client.close()
})

t.test('presence keeps room.online current; typing, receipt and removal are relayed', async (t) => {
  const { client, last } = makeClient()
  const room = client.room('r')
  const events: string[] = []
  room.on('presence', (e) => events.push(`${e.username} ${e.status}`))
  room.on('typing', (e) => events.push(`${e.username} typing ${String(e.typing)}`))
  room.on('receipt', (e) => events.push(`${e.username} read ${e.readSeq}`))
  room.on('left', (e) => events.push(`left ${e.reason}`))
  const joined = room.join()
  await flush()
  last().accept()
  last().answerJoin('r', 0, [], [{ userId: '1', username: 'alice' }])
  last().deliver({ type: 'presence', room: 'r', userId: '2', username: 'bob', status: 'online' })
  await joined
  t.same(room.online.map((u) => u.username), ['alice', 'bob'])
  last().deliver({ type: 'typing', room: 'r', userId: '2', username: 'bob', typing: true })
  last().deliver({ type: 'receipt', room: 'r', userId: '2', username: 'bob', readSeq: 3 })
  last().deliver({ type: 'presence', room: 'r', userId: '2', username: 'bob', status: 'offline' })
  t.same(room.online.map((u) => u.username), ['alice'])
  last().deliver({ type: 'left', room: 'r', reason: 'removed' })
  t.same(events, ['bob online', 'bob typing true', 'bob read 3', 'bob offline', 'left removed'])
  t.equal(room.joined, false)
  await t.rejects(room.send('x'), { code: 'forbidden' }, 'a removed room takes no sends')
  client.close()
})

t.test('join refused for good rejects with the code; a retryable refusal is retried', async (t) => {
  const { client, clock, last } = makeClient()
  const secret = client.room('secret').join()
  const busy = client.room('busy').join()
  await flush()
  last().accept()
  const sj = last().frames('join').find((f) => f.room === 'secret')!
  last().deliver({ type: 'error', code: 'forbidden', message: 'private', ref: sj.ref })
  await t.rejects(secret, { code: 'forbidden' })
  const bj = last().frames('join').find((f) => f.room === 'busy')!
  last().deliver({ type: 'error', code: 'unavailable', message: 'later', ref: bj.ref })
  await clock.advance(1000)
  t.equal(last().frames('join').filter((f) => f.room === 'busy').length, 2, 'retried after a backoff')
  last().answerJoin('busy', 3)
  await busy
  await clock.advance(30_000)
  t.equal(last().frames('join').filter((f) => f.room === 'secret').length, 1, 'the refused room is not joined again')
  client.close()
})

t.test('leave resolves on left and drops the intent: no re-join after a reconnect', async (t) => {
  const { client, clock, last } = makeClient()
  const room = client.room('r')
  const joined = room.join()
  await flush()
  last().accept()
  last().answerJoin('r', 0)
  await joined
  const left = room.leave()
  const leave = last().frames('leave')[0]!
  last().deliver({ type: 'left', room: 'r', ref: leave.ref })
  await left
  last().serverClose(1006)
  await clock.advance(1000)
  last().accept()
  t.equal(last().frames('join').length, 0, 'a left room is not joined again')
  client.close()
})
