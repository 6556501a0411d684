import t from 'tap'
import { textFault, textProblem } from '../../src/protocol/text.js'

const NUL = 'must not contain NUL (\\u0000)'
const LONE = 'must be well-formed Unicode (no lone surrogates)'

t.test('textFault', async (t) => {
  t.equal(textFault(''), null, 'empty is fine')
  t.equal(textFault('héllo ✓ \u{1F600} \n\t back\\slash'), null, 'any well-formed text')
  t.equal(textFault('a\u0000b'), NUL)
  t.equal(textFault('\uD800'), LONE, 'a lone high surrogate')
  t.equal(textFault('x\uDC00'), LONE, 'a lone low surrogate')
  t.equal(textFault('\uDC00\uD800'), LONE, 'a pair in the wrong order')
})

t.test('textProblem walks a parsed JSON value and names the first bad field', async (t) => {
  t.equal(textProblem({ a: 'ok', n: 1, b: true, z: null, list: ['x', { y: 'fine' }] }, 'body'), null)
  t.equal(textProblem(undefined, 'body'), null, 'no body')
  t.equal(textProblem({ title: 'a\u0000' }, 'body'), `body.title: ${NUL}`)
  t.equal(textProblem({ list: ['ok', { deep: '\uD83D' }] }, 'body'), `body.list[1].deep: ${LONE}`)
  t.equal(textProblem({ 'k\u0000': 'v' }, 'body'), `body: a field name ${NUL}`)
  t.equal(textProblem('\uD800', 'query'), `query: ${LONE}`, 'a bare string')
  t.equal(textProblem({ username: 'x\u0000' }, ''), `username: ${NUL}`, 'no prefix')
})
