import t from 'tap'
import { createRoster } from '../../src/gateway/roster.js'

const alice = { id: '1', username: 'alice' }
const bob = { id: '2', username: 'bob' }
const carol = { id: '3', username: 'carol' }

t.test('an empty roster has nobody online anywhere', async (t) => {
  const roster = createRoster()
  t.same(roster.online('general'), [])
})

t.test('joined users are listed as { userId, username }, in the order they arrived', async (t) => {
  const roster = createRoster()
  roster.add('general', bob)
  roster.add('general', alice)
  t.same(roster.online('general'), [{ userId: '2', username: 'bob' }, { userId: '1', username: 'alice' }])
})

t.test('several sockets of one user count once', async (t) => {
  const roster = createRoster()
  roster.add('general', alice)
  roster.add('general', alice)
  roster.add('general', { ...alice })
  roster.add('general', bob)
  t.same(roster.online('general'), [{ userId: '1', username: 'alice' }, { userId: '2', username: 'bob' }])
})

t.test('a user leaves the list only when the last socket is removed', async (t) => {
  const roster = createRoster()
  roster.add('general', alice)
  roster.add('general', alice)
  roster.add('general', alice)
  roster.add('general', bob)
  roster.remove('general', alice)
  t.same(roster.online('general').map((u) => u.userId), ['1', '2'], 'two sockets left')
  roster.remove('general', alice)
  t.same(roster.online('general').map((u) => u.userId), ['1', '2'], 'one socket left')
  roster.remove('general', alice)
  t.same(roster.online('general'), [{ userId: '2', username: 'bob' }], 'gone with the last one')
  roster.remove('general', bob)
  t.same(roster.online('general'), [])
})

t.test('users are matched by id, not by object or username', async (t) => {
  const roster = createRoster()
  roster.add('general', alice)
  roster.remove('general', { id: '1', username: 'renamed' })
  t.same(roster.online('general'), [], 'a different object with the same id removes the entry')
  roster.add('general', alice)
  roster.remove('general', { id: '9', username: 'alice' })
  t.same(roster.online('general'), [{ userId: '1', username: 'alice' }], 'the same username with another id does not')
})

t.test('removing what is not there is harmless', async (t) => {
  const roster = createRoster()
  roster.remove('nowhere', alice)
  t.same(roster.online('nowhere'), [], 'an unknown room')
  roster.add('general', alice)
  roster.remove('general', bob)
  t.same(roster.online('general'), [{ userId: '1', username: 'alice' }], 'an unknown user in a known room')
  roster.remove('general', alice)
  roster.remove('general', alice)
  roster.remove('general', alice)
  t.same(roster.online('general'), [], 'more removals than sockets')
  roster.add('general', alice)
  t.same(roster.online('general'), [{ userId: '1', username: 'alice' }], 'extra removals did not go negative')
  roster.remove('general', alice)
  t.same(roster.online('general'), [], 'one removal takes the single socket away again')
})

t.test('rooms are independent', async (t) => {
  const roster = createRoster()
  roster.add('general', alice)
  roster.add('general', bob)
  roster.add('random', alice)
  roster.add('random', carol)
  roster.remove('general', alice)
  t.same(roster.online('general'), [{ userId: '2', username: 'bob' }])
  t.same(roster.online('random'), [{ userId: '1', username: 'alice' }, { userId: '3', username: 'carol' }], 'alice is still in random')
  roster.remove('random', bob)
  t.same(roster.online('general'), [{ userId: '2', username: 'bob' }], 'removing bob from a room he is not in leaves his other room alone')
  t.same(roster.online('other'), [])
})

t.test('a room emptied and joined again starts fresh', async (t) => {
  const roster = createRoster()
  roster.add('general', alice)
  roster.add('general', bob)
  roster.remove('general', alice)
  roster.remove('general', bob)
  roster.add('general', carol)
  t.same(roster.online('general'), [{ userId: '3', username: 'carol' }])
})

t.test('online returns a fresh list the caller may keep or change', async (t) => {
  const roster = createRoster()
  roster.add('general', alice)
  const list = roster.online('general')
  roster.add('general', bob)
  t.same(list, [{ userId: '1', username: 'alice' }], 'a snapshot')
  list.length = 0
  t.equal(roster.online('general').length, 2, 'changing it changes nothing inside')
})
