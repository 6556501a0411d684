import t from 'tap'
import { createMemoryPresence } from '../../src/presence/memory-presence-store.js'
import { presenceStoreContract } from '../helpers/presence-store-contract.js'

await presenceStoreContract(t, 'memory', async ({ leaseMs, now }) => {
  const presence = createMemoryPresence({ leaseMs, now })
  return { node: (nodeId) => presence.forNode(nodeId), close: async () => {} }
}, { clock: 'manual' })

t.test('memory: stores from separate createMemoryPresence calls share nothing', async (t) => {
  const one = createMemoryPresence({ leaseMs: 1000 }).forNode('a')
  const two = createMemoryPresence({ leaseMs: 1000 }).forNode('a')
  t.equal(await one.join('lobby', { userId: '101', username: 'alice' }), true)
  t.same(await two.online('lobby'), [])
  t.equal(await two.join('lobby', { userId: '101', username: 'alice' }), true)
})

t.test('memory: the clock defaults to Date.now', async (t) => {
  const store = createMemoryPresence({ leaseMs: 60_000 }).forNode('a')
  await store.connect({ userId: '101', username: 'alice' })
  t.equal(await store.isOnline('101'), true, 'a lease measured on the real clock is live')
})
