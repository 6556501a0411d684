import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { createExpiries } from '../../src/gateway/expiries.js'

/** Expiries of labelled items, each noted with the wall-clock time it ran. */
function setup (): { expiries: ReturnType<typeof createExpiries<string>>, expired: Array<{ item: string, at: number }> } {
  const expired: Array<{ item: string, at: number }> = []
  return { expiries: createExpiries<string>((item) => { expired.push({ item, at: Date.now() }) }), expired }
}

t.test('each item expires at its time, never before, and items sharing a time expire together', async (t) => {
  const { expiries, expired } = setup()
  const first = Date.now() + 60
  const second = first + 60
  expiries.add('a', first)
  expiries.add('b', first)
  expiries.add('c', second)
  await sleep(second - Date.now() + 50)
  t.strictSame(expired.map((e) => e.item), ['a', 'b', 'c'])
  for (const { item, at } of expired) {
    const due = item === 'c' ? second : first
    t.ok(at >= due && at <= due + 40, `${item} expired at its time (${at - due} ms after)`)
  }
})

t.test('a time already past expires the item at once', async (t) => {
  const { expiries, expired } = setup()
  expiries.add('late', Date.now() - 1)
  t.strictSame(expired.map((e) => e.item), ['late'])
})

t.test('a deleted item does not expire; the others at its time still do', async (t) => {
  const { expiries, expired } = setup()
  const at = Date.now() + 40
  expiries.add('kept', at)
  expiries.add('gone', at)
  expiries.delete('gone', at)
  expiries.add('alone', at + 10)
  expiries.delete('alone', at + 10)
  await sleep(100)
  t.strictSame(expired.map((e) => e.item), ['kept'])
})

t.test('moving an item to a later time (delete, then add) expires it then, not at the first', async (t) => {
  const { expiries, expired } = setup()
  const first = Date.now() + 40
  const later = first + 80
  expiries.add('moved', first)
  expiries.delete('moved', first)
  expiries.add('moved', later)
  await sleep(first - Date.now() + 30)
  t.strictSame(expired, [], 'nothing at the first time')
  await sleep(later - Date.now() + 40)
  t.strictSame(expired.map((e) => e.item), ['moved'])
  t.ok((expired[0]?.at ?? 0) >= later, 'at the later time')
})

t.test('a timer that runs before the clock reaches the time waits on instead of expiring early', async (t) => {
  let clock = 1_000
  const expired: string[] = []
  const expiries = createExpiries<string>((item) => { expired.push(item) }, () => clock)
  // Its timer waits 20 ms of real time, after which this clock still reads 10 ms short.
  expiries.add('early', 1_020)
  clock = 1_010
  await sleep(40)
  t.strictSame(expired, [], 'not expired while the clock is short of the time')
  clock = 1_020
  await sleep(40)
  t.strictSame(expired, ['early'], 'expired once the clock reached it')
})
