import t from 'tap'
import { createPasswordHasher, HasherBusyError } from '../../src/auth/password.js'
import { loadConfig } from '../../src/config.js'

const PHC = /^\$scrypt\$ln=\d+,r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/

// Low costs keep the suite fast; the production cost has its own test below.
const hasher = createPasswordHasher({ logN: 10, concurrency: 2, queue: 16 })

t.test('hash gives a PHC string carrying its cost', async (t) => {
  const stored = await hasher.hash('correct horse battery staple')
  t.match(stored, PHC)
  t.match(stored, /^\$scrypt\$ln=10,/)
  t.not(await hasher.hash('correct horse battery staple'), stored, 'a fresh salt each time')
  t.match(await createPasswordHasher({ logN: 12, concurrency: 1, queue: 1 }).hash('x'), /^\$scrypt\$ln=12,r=8,p=1\$/)
})

t.test('verify accepts the right password and refuses others', async (t) => {
  const stored = await hasher.hash('correct horse battery staple')
  t.equal(await hasher.verify('correct horse battery staple', stored), true)
  t.equal(await hasher.verify('correct horse battery stapl', stored), false)
  t.equal(await hasher.verify('Correct horse battery staple', stored), false)
  t.equal(await hasher.verify('', stored), false)
})

t.test('verify uses the cost stored in the hash, so raising logN keeps old hashes valid', async (t) => {
  const old = await hasher.hash('pa55word-old')
  const stronger = createPasswordHasher({ logN: 11, concurrency: 1, queue: 4 })
  t.equal(await stronger.verify('pa55word-old', old), true)
  t.equal(await stronger.verify('wrong', old), false)
})

t.test('verify with no stored hash (unknown user) is false', async (t) => {
  t.equal(await hasher.verify('anything', null), false)
  t.equal(await hasher.verify('', null), false)
})

t.test('verify with a malformed stored hash is false, not an error', async (t) => {
  for (const stored of ['', 'plain', '$scrypt$', '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA', '$scrypt$ln=10,r=8,p=1$!!!$???']) {
    t.equal(await hasher.verify('password', stored), false, JSON.stringify(stored))
  }
})

// A stored hash whose key part decodes to nothing (truncated, hand-edited or badly migrated) must
// not compare equal to the empty key scrypt derives for it: that would accept any password.
t.test('a stored hash with an empty key never verifies', async (t) => {
  const truncated = '$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$A'
  t.equal(await hasher.verify('any password at all', truncated), false)
})

t.test('verify(x, null) spends a real hash, like a wrong password', async (t) => {
  // A cost high enough that the hash dominates over scheduling noise (~40 ms).
  const timed = createPasswordHasher({ logN: 14, concurrency: 1, queue: 4 })
  const stored = await timed.hash('the right password')
  const time = async (fn: () => Promise<unknown>): Promise<number> => {
    const samples: number[] = []
    for (let i = 0; i < 5; i++) {
      const start = performance.now()
      await fn()
      samples.push(performance.now() - start)
    }
    return samples.sort((x, y) => x - y)[2] ?? 0
  }
  const wrong = await time(async () => await timed.verify('a wrong password', stored))
  const unknown = await time(async () => await timed.verify('a wrong password', null))
  const garbage = await time(async () => await timed.verify('a wrong password', 'not-a-hash'))
  t.ok(unknown > 0.3 * wrong, `unknown user ${unknown.toFixed(1)} ms vs wrong password ${wrong.toFixed(1)} ms`)
  t.ok(garbage > 0.3 * wrong, `malformed hash ${garbage.toFixed(1)} ms vs wrong password ${wrong.toFixed(1)} ms`)
})

t.test('needsRehash: lower cost or not our format', async (t) => {
  const at10 = await hasher.hash('pw')
  const at11 = createPasswordHasher({ logN: 11, concurrency: 1, queue: 1 })
  t.equal(hasher.needsRehash(at10), false, 'same cost')
  t.equal(at11.needsRehash(at10), true, 'lower cost')
  t.equal(createPasswordHasher({ logN: 9, concurrency: 1, queue: 1 }).needsRehash(at10), false, 'higher cost is kept')
  t.equal(hasher.needsRehash('garbage'), true)
  t.equal(hasher.needsRehash(''), true)
  t.equal(hasher.needsRehash('$2b$12$abcdefghijklmnopqrstuu3ZkRr7kQm9e8f3Yc2hK1sP7wXcQeYq'), true, 'bcrypt')
})

t.test('HasherBusyError when concurrency + queue are taken', async (t) => {
  const busy = createPasswordHasher({ logN: 12, concurrency: 1, queue: 1 })
  const running = busy.hash('one')
  const waiting = busy.hash('two')
  await t.rejects(busy.hash('three'), HasherBusyError)
  await t.rejects(busy.verify('three', null), HasherBusyError, 'verify shares the limit')
  t.match(await running, PHC)
  t.match(await waiting, PHC)
  t.match(await busy.hash('four'), PHC, 'free again once the work is done')
})

t.test('a refused call does not take a slot', async (t) => {
  const busy = createPasswordHasher({ logN: 10, concurrency: 1, queue: 0 })
  const first = busy.hash('one')
  for (let i = 0; i < 5; i++) await t.rejects(busy.hash('x'), HasherBusyError)
  await first
  t.match(await busy.hash('again'), PHC)
})

t.test('unicode passwords: NFKC-equivalent forms verify', async (t) => {
  const composed = 'caf\u00e9-p\u00e4ssw\u00f6rd'
  const decomposed = composed.normalize('NFD')
  t.not(composed, decomposed, 'the two forms differ as strings')
  const stored = await hasher.hash(composed)
  t.equal(await hasher.verify(decomposed, stored), true, 'NFD matches NFC')
  const ligature = await hasher.hash('\ufb01sh-and-chips')
  t.equal(await hasher.verify('fish-and-chips', ligature), true, 'compatibility form (the fi ligature)')
  const emoji = await hasher.hash('\u{1F511}\u{1F512} pass \u5bc6\u7801')
  t.equal(await hasher.verify('\u{1F511}\u{1F512} pass \u5bc6\u7801', emoji), true)
  t.equal(await hasher.verify('\u{1F511}\u{1F513} pass \u5bc6\u7801', emoji), false)
})

t.test('a 256-character password works', async (t) => {
  const long = 'p'.repeat(255) + 'X'
  t.equal(long.length, 256)
  const stored = await hasher.hash(long)
  t.equal(await hasher.verify(long, stored), true)
  t.equal(await hasher.verify('p'.repeat(256), stored), false, 'the last character counts')
})

t.test('the default cost is 17 and one hash at it completes', async (t) => {
  const { auth } = loadConfig({ JWT_SECRET: 'unit-test-secret-that-is-32-bytes-or-more' })
  t.equal(auth.scryptLogN, 17)
  const production = createPasswordHasher({ logN: auth.scryptLogN, concurrency: auth.hashConcurrency, queue: auth.hashQueue })
  const start = performance.now()
  const stored = await production.hash('correct horse battery staple')
  t.comment(`one hash at ln=17 took ${(performance.now() - start).toFixed(0)} ms`)
  t.match(stored, /^\$scrypt\$ln=17,r=8,p=1\$/)
  t.equal(await production.verify('correct horse battery staple', stored), true)
})
