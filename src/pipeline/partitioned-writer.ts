import { WriteRefused, type BatchWriter, type BatchWriterStats } from './batch-writer.js'

export interface PartitionedWriterOptions<In, Out> {
  /** Independent writers, each with one write in flight: as many writes in flight as lanes. */
  readonly lanes: ReadonlyArray<BatchWriter<In, Out>>
  /** The key whose items must be written in order (a room id): all its items go to one lane. */
  readonly keyOf: (item: In) => string
  /** Items queued over all lanes beyond which `submit` is refused with `queue_full`. */
  readonly queueLimit: number
}

/** FNV-1a over UTF-16 code units: cheap, stable, and spreads short ids well enough for a few lanes. */
function hash (key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/**
 * Several group commits in flight at once, keys partitioned among them. Invariant: every item of a
 * key goes through the same lane, and a lane writes one batch at a time and answers its items in
 * order, so a room's messages are stored, numbered and answered in the order they were submitted,
 * exactly as with one writer. Different rooms' writes overlap (on separate connections), which is
 * what lets Postgres work on one batch while the server handles the answer to another.
 */
export function createPartitionedWriter<In, Out> (options: PartitionedWriterOptions<In, Out>): BatchWriter<In, Out> {
  const { lanes, keyOf, queueLimit } = options
  if (lanes.length === 0) throw new Error('a partitioned writer needs at least one lane')
  // One lane (the default): its own queue limit applies, and nothing is hashed.
  const only = lanes.length === 1 ? lanes[0] : undefined
  let refused = 0
  const queued = (): number => lanes.reduce((sum, lane) => sum + lane.stats().queued, 0)
  return {
    async submit (item) {
      if (only !== undefined) return await only.submit(item)
      if (queued() >= queueLimit) {
        refused++
        throw new WriteRefused('queue_full')
      }
      return await (lanes[hash(keyOf(item)) % lanes.length] as BatchWriter<In, Out>).submit(item)
    },
    async close () {
      await Promise.all(lanes.map(async (lane) => { await lane.close() }))
    },
    async settled () {
      await Promise.all(lanes.map(async (lane) => { await lane.settled() }))
    },
    stats (): BatchWriterStats {
      const all = lanes.map((lane) => lane.stats())
      const sum = (field: keyof BatchWriterStats): number => all.reduce((total, s) => total + s[field], 0)
      return { queued: sum('queued'), batches: sum('batches'), written: sum('written'), refused: sum('refused') + refused, failed: sum('failed') }
    }
  }
}
