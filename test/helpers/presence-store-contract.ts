import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import type { OnlineUser, PresenceChange, PresenceStore } from '../../src/presence/presence-store.js'

/**
 * The PresenceStore contract (src/presence/presence-store.ts), run against any implementation.
 *
 * A factory builds one isolated store shared by any number of nodes: the contract calls it once
 * per subtest and closes it at the end of that subtest, so it must not see another call's entries
 * (a Redis factory uses a fresh key prefix each time). `node(id)` is that store as seen by the node
 * `id`; the contract calls it once per node id and subtest.
 */
export interface PresenceStoreHarness {
  node (nodeId: string): PresenceStore
  /**
   * Removes everything the shared store holds, as a Redis restarted empty does (its keys only:
   * other tests share the server). Absent where nothing like it can happen (the memory store):
   * the case is then skipped.
   */
  wipe?: () => Promise<void>
  /** Releases what the factory opened (connections, keys); called once, after the subtest. */
  close (): Promise<void>
}

export interface PresenceStoreFactoryOptions {
  /** The lease every node's store must use (and report as `leaseMs`). */
  readonly leaseMs: number
  /**
   * The clock, in ms. With `clock: 'manual'` the contract moves it by hand and the implementation
   * must read the time only through it; with `clock: 'real'` it is `Date.now` and may be ignored.
   */
  readonly now: () => number
}

export type PresenceStoreFactory = (options: PresenceStoreFactoryOptions) => Promise<PresenceStoreHarness>

export interface PresenceStoreContractOptions {
  /**
   * `'manual'` (the default): the contract hands the factory a clock it moves itself, so the lease
   * tests take no real time. For implementations that read the time only through `now` (the
   * memory store; a Redis store that keeps expiry times computed from `now`).
   * `'real'`: `now` is `Date.now` and the contract sleeps through the leases. For implementations
   * whose leases run on a clock of their own (Redis key TTLs); each lease test then takes about
   * two or three `leaseMs`.
   */
  readonly clock?: 'manual' | 'real'
  /**
   * The lease handed to the factory. Default 1000 ms with a manual clock, 400 ms with a real one;
   * with a real clock it must be far longer than a few round trips to the store.
   */
  readonly leaseMs?: number
  /**
   * How far from the lease boundary the lease checks stay: an entry must still count `slackMs`
   * before its lease ends and must be gone `slackMs` after. Default 1 ms with a manual clock and
   * `leaseMs / 4` with a real one (timer lateness, round trips, TTL granularity).
   */
  readonly slackMs?: number
}

/** What each subtest works with. */
interface Context {
  node (nodeId: string): PresenceStore
  /** The harness's `wipe`; the cases using it run only where it exists. */
  wipe (): Promise<void>
  readonly leaseMs: number
  readonly slackMs: number
  /** Lets `ms` pass; the nodes in `alive` touch every quarter lease meanwhile (and once at the start), as live nodes do. */
  passes (ms: number, ...alive: PresenceStore[]): Promise<void>
}

const alice: OnlineUser = { userId: '101', username: 'alice' }
const bob: OnlineUser = { userId: '102', username: 'bob' }
const carol: OnlineUser = { userId: '103', username: 'carol' }
const dave: OnlineUser = { userId: '104', username: 'dave' }

/** `online` promises no order: compare sorted lists. */
const sorted = (users: readonly OnlineUser[]): OnlineUser[] =>
  [...users].map((u) => ({ userId: u.userId, username: u.username })).sort((a, b) => a.userId.localeCompare(b.userId))

/** Changes as `scope user username` (scope `*` for the server), sorted: easy to read when a case fails. */
const listed = (changes: readonly PresenceChange[]): string[] =>
  changes.map((c) => `${c.roomId ?? '*'} ${c.userId} ${c.username}`).sort()

/**
 * Registers the contract's subtests on `t` and resolves once they have run. `name` labels them
 * (say, 'memory' or 'redis').
 */
export async function presenceStoreContract (t: Test, name: string, factory: PresenceStoreFactory, options: PresenceStoreContractOptions): Promise<void> {
  const clock = options.clock ?? 'manual'
  const leaseMs = options.leaseMs ?? (clock === 'manual' ? 1000 : 400)
  const slackMs = options.slackMs ?? (clock === 'manual' ? 1 : Math.floor(leaseMs / 4))
  if (slackMs * 2 >= leaseMs) throw new Error('slackMs must be well under half of leaseMs')

  // Learnt from the first harness made; the cases that wipe come after others.
  let canWipe = false
  const setup = async (t: Test): Promise<Context> => {
    let time = 1_700_000_000_000
    const now = clock === 'manual' ? () => time : Date.now
    const harness = await factory({ leaseMs, now })
    canWipe = harness.wipe !== undefined
    t.teardown(async () => { await harness.close() })
    const step = Math.max(1, Math.floor(leaseMs / 4))
    return {
      node: (nodeId) => harness.node(nodeId),
      async wipe () {
        if (harness.wipe === undefined) throw new Error('this harness cannot wipe')
        await harness.wipe()
      },
      leaseMs,
      slackMs,
      async passes (ms, ...alive) {
        let left = ms
        for (;;) {
          for (const store of alive) await store.touch()
          if (left <= 0) return
          const by = Math.min(step, left)
          if (clock === 'manual') time += by
          else await sleep(by)
          left -= by
        }
      }
    }
  }

  const check = async (title: string, fn: (t: Test, c: Context) => Promise<void>, skip: string | false = false): Promise<void> => {
    await t.test(`${name}: ${title}`, { skip }, async (t) => { await fn(t, await setup(t)) })
  }


  await check('leaseMs is the lease the store was made with', async (t, c) => {
    t.equal(c.node('a').leaseMs, c.leaseMs)
  })

  await check('join resolves true only for the first node to hold the user in the room', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    t.equal(await a.join('lobby', alice), true, 'nobody had alice there: she came online')
    t.equal(await b.join('lobby', alice), false, 'a second node joining her is no news')
    t.equal(await a.join('lobby', alice), false, 'nor is the same node reporting her again')
    t.equal(await b.join('lobby', bob), true, 'another user is news of their own')
    for (const reader of [a, b, c.node('c')]) {
      t.same(sorted(await reader.online('lobby')), [alice, bob], 'every node, even one that never reported, sees the same list')
    }
  })

  await check('leave resolves true only when the last node holding the user lets go', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    await b.join('lobby', alice)
    t.equal(await a.leave('lobby', alice.userId), false, 'b still has her')
    t.same(sorted(await b.online('lobby')), [alice])
    t.equal(await a.leave('lobby', alice.userId), false, 'a second leave from the same node changes nothing')
    t.equal(await b.leave('lobby', alice.userId), true, 'the last one: she went offline there')
    t.same(await a.online('lobby'), [])
    t.equal(await b.leave('lobby', alice.userId), false, 'nothing left to leave')
    t.equal(await a.join('lobby', alice), true, 'joining again is coming online again')
  })

  await check('a node holds a user once, however often it joins: one leave ends its claim', async (t, c) => {
    const a = c.node('a')
    t.equal(await a.join('lobby', alice), true)
    t.equal(await a.join('lobby', alice), false)
    t.equal(await a.leave('lobby', alice.userId), true, 'the node counts its sockets itself; the store holds a set')
    t.same(await a.online('lobby'), [])
  })

  await check('leave from a node that never joined the user resolves false and changes nothing', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    t.equal(await b.leave('lobby', alice.userId), false, 'unknown room and user')
    await a.join('lobby', alice)
    t.equal(await b.leave('lobby', alice.userId), false, 'b never held her')
    t.equal(await b.leave('lobby', bob.userId), false, 'nor bob, whom nobody holds')
    t.same(sorted(await b.online('lobby')), [alice], 'a still holds her')
    t.equal(await a.leave('lobby', alice.userId), true, 'and a\'s leave is still the last one')
  })

  await check('online lists every user held on any node once, with their username', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    await a.join('lobby', bob)
    await b.join('lobby', alice)
    await b.join('lobby', carol)
    const listed = await c.node('c').online('lobby')
    t.equal(listed.length, 3, 'alice once, though two nodes hold her')
    t.same(sorted(listed), [alice, bob, carol])
    t.same(await a.online('nowhere'), [], 'a room nobody joined is empty')
    await b.leave('lobby', carol.userId)
    t.same(sorted(await a.online('lobby')), [alice, bob])
  })

  await check('rooms are independent of each other', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    t.same(await b.online('kitchen'), [], 'alice is only in the lobby')
    t.equal(await b.join('kitchen', alice), true, 'her first socket in the kitchen is news there')
    t.equal(await a.leave('lobby', alice.userId), true, 'leaving the lobby, though b holds her in the kitchen, is going offline there')
    t.same(await a.online('lobby'), [])
    t.same(sorted(await a.online('kitchen')), [alice], 'the kitchen is untouched')
    t.equal(await b.leave('kitchen', alice.userId), true)
  })

  await check('connect and disconnect follow the rules of join and leave, for the server', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    t.equal(await a.isOnline(alice.userId), false)
    t.equal(await a.connect(alice), true, 'her first socket anywhere')
    t.equal(await b.connect(alice), false, 'another node connecting her is no news')
    t.equal(await a.connect(alice), false, 'nor the same node again')
    t.equal(await c.node('c').isOnline(alice.userId), true, 'seen from any node')
    t.equal(await c.node('c').disconnect(alice.userId), false, 'a node that never connected her cannot disconnect her')
    t.equal(await a.disconnect(alice.userId), false, 'b still has her')
    t.equal(await b.isOnline(alice.userId), true)
    t.equal(await b.disconnect(alice.userId), true, 'the last node: she went offline')
    t.equal(await a.isOnline(alice.userId), false)
    t.equal(await b.disconnect(alice.userId), false, 'nothing left')
    t.equal(await b.connect(alice), true, 'connecting again is coming online again')
  })

  await check('room presence and server presence are independent', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    t.equal(await b.isOnline(alice.userId), false, 'a room join is not a connection')
    t.equal(await a.connect(alice), true, 'so her connection is still news')
    t.equal(await a.connect(bob), true)
    t.same(sorted(await b.online('lobby')), [alice], 'a connection is not a room join')
    t.equal(await b.join('lobby', bob), true, 'so bob\'s join is still news')
    t.equal(await a.disconnect(alice.userId), true)
    t.same(sorted(await b.online('lobby')), [alice, bob], 'disconnecting leaves no room')
    t.equal(await a.leave('lobby', bob.userId), false, 'a holds bob on the server, not in the lobby')
    t.equal(await b.leave('lobby', bob.userId), true)
    t.equal(await a.isOnline(bob.userId), true, 'leaving a room is not disconnecting')
    t.equal(await a.leave('lobby', alice.userId), true)
    t.equal(await a.disconnect(bob.userId), true)
  })

  await check('an entry of a node that stops touching stops counting after leaseMs, before any sweep', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    await a.connect(alice)
    await c.passes(c.leaseMs - c.slackMs, b)
    t.same(sorted(await b.online('lobby')), [alice], 'still within the lease')
    t.equal(await b.isOnline(alice.userId), true)
    await c.passes(2 * c.slackMs, b)
    t.same(await b.online('lobby'), [], 'a stopped touching: its users went offline by themselves')
    t.equal(await b.isOnline(alice.userId), false)
    t.equal(await b.join('lobby', alice), true, 'another node joining her is news again')
    t.equal(await b.connect(alice), true, 'and so is connecting her')
  })

  await check('another node\'s touches and reports do not keep a silent node\'s entries', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    await b.join('lobby', bob)
    await c.passes(c.leaseMs - c.slackMs, b)
    await b.join('kitchen', carol)
    await b.connect(carol)
    await c.passes(2 * c.slackMs, b)
    t.same(sorted(await b.online('lobby')), [bob], 'only a\'s entry lapsed')
  })

  await check('a live node\'s claim outlasts the lapse of another node holding the same user', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    await b.join('lobby', alice)
    await a.connect(alice)
    await b.connect(alice)
    await c.passes(c.leaseMs + c.slackMs, b)
    t.same(sorted(await b.online('lobby')), [alice], 'b still holds her')
    t.equal(await b.isOnline(alice.userId), true)
    t.equal(await b.leave('lobby', alice.userId), true, 'a\'s lapsed claim does not count: b\'s leave is the last')
    t.equal(await b.disconnect(alice.userId), true)
    t.same(await b.online('lobby'), [])
    t.equal(await b.isOnline(alice.userId), false)
  })

  await check('touch renews the lease of all of the node\'s entries', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    await a.join('kitchen', bob)
    await a.connect(alice)
    await c.passes(c.leaseMs - c.slackMs)
    await a.touch()
    await c.passes(2 * c.slackMs)
    t.same(sorted(await b.online('lobby')), [alice], 'renewed: still counting past the first lease')
    t.same(sorted(await b.online('kitchen')), [bob])
    t.equal(await b.isOnline(alice.userId), true)
    await c.passes(c.leaseMs - c.slackMs, a)
    t.same(sorted(await b.online('lobby')), [alice], 'touching on keeps it')
    await c.passes(c.leaseMs + c.slackMs)
    t.same(await b.online('lobby'), [], 'a lease after the last touch, it is gone')
    t.same(await b.online('kitchen'), [])
    t.equal(await b.isOnline(alice.userId), false)
  })

  const reports: Array<[string, (a: PresenceStore) => Promise<unknown>]> = [
    ['join', async (a) => await a.join('attic', dave)],
    ['leave', async (a) => await a.leave('kitchen', carol.userId)],
    ['connect', async (a) => await a.connect(dave)],
    ['disconnect', async (a) => await a.disconnect(carol.userId)]
  ]
  for (const [report, make] of reports) {
    await check(`a ${report} renews the lease of all of the node's entries, as a touch does`, async (t, c) => {
      const a = c.node('a')
      const b = c.node('b')
      await a.join('lobby', alice)
      await a.join('kitchen', carol)
      await a.connect(carol)
      await c.passes(c.leaseMs - c.slackMs)
      await make(a)
      await c.passes(2 * c.slackMs)
      t.same(sorted(await b.online('lobby')), [alice], `renewed by the ${report}`)
    })
  }

  await check('calls from one node take effect in the order they are made', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    // Not awaited one by one: a store must not let a later call overtake an earlier one.
    const results = await Promise.all([
      a.join('lobby', alice),
      a.online('lobby'),
      a.leave('lobby', alice.userId),
      a.online('lobby'),
      a.join('lobby', alice),
      a.connect(alice),
      a.isOnline(alice.userId),
      a.disconnect(alice.userId),
      a.isOnline(alice.userId),
      a.connect(alice),
      a.join('lobby', bob),
      a.leave('lobby', bob.userId)
    ])
    t.same(results, [true, [alice], true, [], true, true, true, true, false, true, true, true])
    t.same(sorted(await b.online('lobby')), [alice], 'the last word on alice was a join')
    t.equal(await b.isOnline(alice.userId), true, 'and on her connection a connect')
  })

  await check('a lapsed node that touches again gets all of its entries back, whatever was read meanwhile', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    await a.join('kitchen', alice)
    await a.connect(alice)
    await c.passes(c.leaseMs + c.slackMs, b)
    t.same(await b.online('lobby'), [], 'lapsed (read in the lobby only)')
    t.equal(await b.isOnline(alice.userId), false)
    t.same(await a.touch(), { online: [], offline: [] }, 'nothing was announced offline (no sweep, no report): nothing to announce')
    t.same(sorted(await b.online('lobby')), [alice], 'back in the lobby')
    t.same(sorted(await b.online('kitchen')), [alice], 'and in the kitchen')
    t.equal(await b.isOnline(alice.userId), true, 'and on the server')
    t.same(await b.sweep(), [], 'a is live again: nothing to sweep')
  })

  await check('sweep does nothing while every node is live', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    await a.connect(alice)
    await c.passes(c.leaseMs + c.slackMs, a, b)
    t.same(await b.sweep(), [])
    t.same(await a.sweep(), [])
    t.same(sorted(await b.online('lobby')), [alice])
  })

  await check('after no node renewed for a while (the store was away from all), sweep waits a lease for them to come back', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    await b.join('lobby', bob)
    await c.passes(2 * c.leaseMs)
    t.same(await b.sweep(), [], 'nobody renewed: every lease ran out together')
    await b.touch()
    t.same(await b.sweep(), [], 'renewals just resumed: a may still come back')
    await c.passes(c.leaseMs - c.slackMs, b)
    t.same(await b.sweep(), [], 'still within the lease after the silence')
    t.same(await a.touch(), { online: [], offline: [] }, 'a is back: nothing was lost, nothing to announce')
    t.same(sorted(await b.online('lobby')), [alice, bob])
    await c.passes(c.leaseMs + c.slackMs, b)
    t.same(listed(await b.sweep()), ['lobby 101 alice'], 'a stopped for good with others renewing: swept')
  })

  await check('sweep reports each user a dead node left orphaned once, with two nodes sweeping at once, and none still held by a live node', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    const d = c.node('d')
    await a.join('lobby', alice)
    await a.join('kitchen', bob)
    await a.connect(alice)
    await a.join('lobby', carol)
    await b.join('lobby', carol)
    await a.connect(dave)
    await b.connect(dave)
    await c.passes(c.leaseMs + c.slackMs, b, d)
    const [one, two] = await Promise.all([b.sweep(), d.sweep()])
    t.same(listed([...one, ...two]), ['* 101 alice', 'kitchen 102 bob', 'lobby 101 alice'], 'each once between the two sweepers; carol and dave are still held by b')
    t.same([...await b.sweep(), ...await d.sweep()], [], 'a is gone: later sweeps find nothing')
    t.same(sorted(await d.online('lobby')), [carol])
    t.equal(await d.isOnline(dave.userId), true)
    t.equal(await b.leave('lobby', carol.userId), true, 'b holds carol alone now')
    t.equal(await b.disconnect(dave.userId), true, 'and dave')
  })

  await check('a user held by two dead nodes is reported once, by the sweep after the last one died', async (t, c) => {
    const a = c.node('a')
    const e = c.node('e')
    const b = c.node('b')
    const d = c.node('d')
    await a.join('lobby', alice)
    await e.join('lobby', alice)
    await a.join('lobby', bob)
    await e.join('lobby', carol)
    await c.passes(c.leaseMs + c.slackMs, b, d, e)
    t.same(listed(await b.sweep()), ['lobby 102 bob'], 'a died; e still holds alice')
    await c.passes(c.leaseMs + c.slackMs, b, d)
    const [one, two] = await Promise.all([b.sweep(), d.sweep()])
    t.same(listed([...one, ...two]), ['lobby 101 alice', 'lobby 103 carol'], 'e died: alice and carol, once')

    const f = c.node('f')
    const g = c.node('g')
    await f.join('attic', dave)
    await g.join('attic', dave)
    await c.passes(c.leaseMs + c.slackMs, b, d)
    const [three, four] = await Promise.all([b.sweep(), d.sweep()])
    t.same(listed([...three, ...four]), ['attic 104 dave'], 'two nodes dying together: dave once')
  })

  await check('a dead node\'s user already announced offline by a live node\'s leave is not swept again', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    await b.join('lobby', alice)
    await a.join('lobby', bob)
    await c.passes(c.leaseMs + c.slackMs, b)
    t.equal(await b.leave('lobby', alice.userId), true, 'a\'s claim is dead: b\'s leave is the last')
    t.equal(await b.join('lobby', bob), true, 'and b joining bob is news')
    t.same(await b.sweep(), [], 'the leave reported alice and b holds bob: nothing left to report')
    t.same(sorted(await b.online('lobby')), [bob])
  })

  await check('touch after the node was swept puts back every claim and returns those no live node had', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    await a.connect(alice)
    await a.join('lobby', carol)
    await b.join('lobby', carol)
    t.same(await a.touch(), { online: [], offline: [] }, 'not lapsed: nothing')
    await c.passes(c.leaseMs + c.slackMs, b)
    t.same(listed(await b.sweep()), ['* 101 alice', 'lobby 101 alice'])
    t.same(await b.online('lobby'), [carol], 'swept')
    const back = await a.touch()
    t.same(listed(back.online), ['* 101 alice', 'lobby 101 alice'], 'what the sweep announced offline comes online again; carol, held by b all along, does not')
    t.same(back.offline, [])
    t.same(sorted(await b.online('lobby')), [alice, carol])
    t.equal(await b.isOnline(alice.userId), true)
    t.same(await a.touch(), { online: [], offline: [] }, 'once')
    t.equal(await b.leave('lobby', carol.userId), false, 'a holds carol again')
    t.equal(await a.leave('lobby', carol.userId), true)
    t.equal(await a.disconnect(alice.userId), true, 'and alice on the server')
  })

  await check('touch after a lapse puts back what live nodes\' reports dropped, and returns what was announced offline', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    await a.join('kitchen', bob)
    await c.passes(c.leaseMs + c.slackMs, b)
    t.equal(await b.join('lobby', alice), true, 'a\'s claim is dead: b joining alice is news')
    t.equal(await b.leave('lobby', alice.userId), true, 'and b leaving her is news too')
    const back = await a.touch()
    t.same(listed(back.online), ['lobby 101 alice'], 'alice was announced offline in the lobby: online again; bob never was')
    t.same(sorted(await b.online('lobby')), [alice])
    t.same(sorted(await b.online('kitchen')), [bob])
    t.same(await b.sweep(), [], 'nothing dead')
  })

  await check('a report from a swept node counts at once; the next touch puts back the rest', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    await a.connect(alice)
    await a.join('kitchen', carol)
    await c.passes(c.leaseMs + c.slackMs, b)
    t.equal((await b.sweep()).length, 3)
    t.equal(await a.join('attic', bob), true, 'a new claim after the sweep is news')
    t.equal(await a.leave('kitchen', carol.userId), false, 'carol was swept: her leave is no news')
    t.same(sorted(await b.online('attic')), [bob], 'and counts at once')
    t.same(listed((await a.touch()).online), ['* 101 alice', 'lobby 101 alice'], 'the rest, once: not bob again, nor carol whom a let go')
    t.same(await b.online('kitchen'), [])
  })

  await check('close removes the node\'s claims at once and returns those no live node holds', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    await a.connect(alice)
    await a.join('lobby', carol)
    await b.join('lobby', carol)
    t.same(listed(await a.close()), ['* 101 alice', 'lobby 101 alice'], 'carol is still held by b')
    t.same(sorted(await b.online('lobby')), [carol], 'at once, no lease to wait for')
    t.equal(await b.isOnline(alice.userId), false)
    await c.passes(c.leaseMs + c.slackMs, b)
    t.same(await b.sweep(), [], 'nothing left of a to sweep')
    t.equal(await b.join('lobby', alice), true)
    t.equal(await b.leave('lobby', carol.userId), true, 'a let go of carol too')
  })

  const noWipe = canWipe ? false : `${name}: no restart that loses everything`
  await check('after the shared store lost everything, the next touch of each node puts its claims back, each news once', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    await a.connect(alice)
    await a.join('lobby', carol)
    await b.join('lobby', carol)
    await b.connect(dave)
    await c.wipe()
    t.same(await b.online('lobby'), [], 'lost')
    t.equal(await b.isOnline(dave.userId), false)
    const [one, two] = await Promise.all([a.touch(), b.touch()])
    t.same(listed([...one.online, ...two.online]), ['* 101 alice', '* 104 dave', 'lobby 101 alice', 'lobby 103 carol'], 'carol once, though both hold her')
    t.same([...one.offline, ...two.offline], [])
    t.same(sorted(await b.online('lobby')), [alice, carol])
    t.equal(await a.isOnline(dave.userId), true)
    t.equal(await a.leave('lobby', carol.userId), false, 'b holds carol again')
    t.equal(await b.leave('lobby', carol.userId), true)
  }, noWipe)

  await check('after the shared store lost everything, reports count at once and the next touch puts back only the rest', async (t, c) => {
    const a = c.node('a')
    const b = c.node('b')
    await a.join('lobby', alice)
    await a.join('lobby', bob)
    await a.connect(alice)
    await c.wipe()
    t.equal(await a.leave('lobby', bob.userId), false, 'bob is not there to leave')
    t.equal(await a.join('kitchen', carol), true)
    t.same(listed((await a.touch()).online), ['* 101 alice', 'lobby 101 alice'], 'not carol again, nor bob whom a let go')
    t.same(sorted(await b.online('lobby')), [alice])
    t.same(sorted(await b.online('kitchen')), [carol])
  }, noWipe)
}
