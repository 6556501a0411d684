import t from 'tap'
import { createVerifiedTokens } from '../../src/auth/verified-tokens.js'

t.test('a verified token is found until its expiry, then forgotten', async (t) => {
  const tokens = createVerifiedTokens<string>(10)
  tokens.set('a.b.c', 'alice', 1000)
  t.equal(tokens.get('a.b.c', 0), 'alice')
  t.equal(tokens.get('a.b.c', 1000), 'alice', 'good up to and including exp, as the verifier has it')
  t.equal(tokens.get('a.b.c', 1001), undefined, 'expired')
  t.equal(tokens.size, 0, 'an expired token is dropped when found expired')
  t.equal(tokens.get('a.b.d', 0), undefined, 'only the exact text matches')
})

t.test('at most capacity tokens; the oldest makes room', async (t) => {
  const tokens = createVerifiedTokens<number>(3)
  for (let i = 0; i < 5; i++) tokens.set(`t${i}`, i, 1e12)
  t.equal(tokens.size, 3)
  t.strictSame([0, 1, 2, 3, 4].map((i) => tokens.get(`t${i}`, 0)), [undefined, undefined, 2, 3, 4])
  tokens.set('t3', 33, 1e12)
  t.equal(tokens.size, 3, 'setting a token again evicts nothing')
  t.equal(tokens.get('t2', 0), 2)
  t.equal(tokens.get('t3', 0), 33)
})
