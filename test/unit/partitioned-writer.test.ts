import t from 'tap'
import { createBatchWriter, WriteRefused, type BatchWriter } from '../../src/pipeline/batch-writer.js'
import { createPartitionedWriter } from '../../src/pipeline/partitioned-writer.js'

interface Item { readonly room: string, readonly n: number }

/** Lanes over one fake store whose writes the test answers by hand; it records every write and the overlap. */
function lanesOverStore (count: number, queueLimit = 1000) {
  const writes: Array<{ lane: number, items: Item[], answer: () => void }> = []
  let inFlight = 0
  let maxInFlight = 0
  const lanes = Array.from({ length: count }, (_, lane): BatchWriter<Item, string> => createBatchWriter<Item, string>({
    maxBatch: 100,
    maxDelayMs: 0,
    queueLimit,
    isUnavailable: () => false,
    isUncertain: () => false,
    write: async (items) => {
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      try {
        return await new Promise<string[]>((resolve) => {
          writes.push({ lane, items: [...items], answer: () => { resolve(items.map((i) => `${i.room}#${i.n}`)) } })
        })
      } finally {
        inFlight--
      }
    }
  }))
  return { lanes, writes, maxInFlight: () => maxInFlight }
}

const turn = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

/** Answers writes one by one as they come, until two turns pass with none left to answer. */
async function answerAll (writes: Array<{ answer: () => void }>): Promise<void> {
  let answered = 0
  for (let idle = 0; idle < 2;) {
    await turn()
    if (answered < writes.length) {
      writes[answered++]?.answer()
      idle = 0
    } else {
      idle++
    }
  }
}

t.test('a room always goes to the same lane, and its items are answered in the order submitted', async (t) => {
  const { lanes, writes } = lanesOverStore(4)
  const writer = createPartitionedWriter({ lanes, keyOf: (i: Item) => i.room, queueLimit: 1000 })
  const rooms = Array.from({ length: 20 }, (_, i) => `room-${i}`)
  const answered: string[] = []
  const all = []
  for (let n = 0; n < 5; n++) {
    for (const room of rooms) all.push(writer.submit({ room, n }).then((out) => { answered.push(out) }))
    await turn()
  }
  await answerAll(writes)
  await Promise.all(all)
  const laneOfRoom = new Map<string, Set<number>>()
  for (const w of writes) for (const i of w.items) laneOfRoom.set(i.room, (laneOfRoom.get(i.room) ?? new Set()).add(w.lane))
  t.ok([...laneOfRoom.values()].every((set) => set.size === 1), 'every room was written by one lane only')
  t.ok(new Set(writes.map((w) => w.lane)).size > 1, '20 rooms spread over more than one of the 4 lanes')
  for (const room of rooms) {
    const order = answered.filter((out) => out.startsWith(`${room}#`))
    t.strictSame(order, [0, 1, 2, 3, 4].map((n) => `${room}#${n}`), `${room}: answered in submission order`)
  }
})

t.test('lanes write at the same time; one lane still writes one batch at a time', async (t) => {
  const { lanes, writes, maxInFlight } = lanesOverStore(3)
  const writer = createPartitionedWriter({ lanes, keyOf: (i: Item) => i.room, queueLimit: 1000 })
  const all = Array.from({ length: 30 }, (_, n) => writer.submit({ room: `r${n}`, n }))
  await turn()
  t.equal(writes.length, 3, 'one write in flight per lane')
  t.equal(maxInFlight(), 3, 'three writes overlap')
  await answerAll(writes)
  await Promise.all(all)
  t.equal(maxInFlight(), 3, 'never more than one per lane')
  t.equal(writer.stats().written, 30, 'the stats add up the lanes')
  t.equal(writer.stats().batches, writes.length)
})

t.test('the queue limit counts every lane', async (t) => {
  const { lanes, writes } = lanesOverStore(2)
  const writer = createPartitionedWriter({ lanes, keyOf: (i: Item) => i.room, queueLimit: 4 })
  // Submitted in one turn: nothing has left the lanes' queues for a write yet.
  const outcomes = Array.from({ length: 40 }, (_, n) => writer.submit({ room: `r${n}`, n }).then(() => 'ok', (error: unknown) => error))
  await answerAll(writes)
  const results = await Promise.all(outcomes)
  t.equal(results.filter((r) => r === 'ok').length, 4, 'four accepted over both lanes')
  const refused = results.filter((r) => r instanceof WriteRefused)
  t.equal(refused.length, 36)
  t.ok(refused.every((r) => r.reason === 'queue_full'), 'refused as queue_full')
  t.equal(writer.stats().refused, 36, 'refusals are counted')
})

t.test('close and settled wait for every lane', async (t) => {
  const { lanes, writes } = lanesOverStore(2)
  const writer = createPartitionedWriter({ lanes, keyOf: (i: Item) => i.room, queueLimit: 100 })
  const all = Array.from({ length: 6 }, (_, n) => writer.submit({ room: `r${n}`, n }))
  await turn()
  let settled = false
  const settling = writer.settled().then(() => { settled = true })
  writes[0]?.answer()
  await turn()
  t.notOk(settled, 'not settled while another lane still writes')
  let closed = false
  const closing = writer.close().then(() => { closed = true })
  await answerAll(writes)
  await settling
  await closing
  t.ok(closed && settled)
  await Promise.all(all)
  await t.rejects(writer.submit({ room: 'late', n: 0 }), WriteRefused, 'a closed writer refuses')
})

t.test('needs a lane', async (t) => {
  t.throws(() => createPartitionedWriter<Item, string>({ lanes: [], keyOf: (i) => i.room, queueLimit: 1 }))
})
