import t from 'tap'
import { backends } from '../helpers/backends.js'
import { waitUntil } from '../helpers/chat.js'
import { captureLogs } from '../helpers/log-capture.js'
import { startTestServer } from '../helpers/server.js'
import { connect, refusedUpgrade } from '../helpers/socket.js'

// LOG_LEVEL=debug says what happens to sockets: upgrades refused and why, sockets opened and
// closed with their close code. Never a token, wherever the client put it.
const [embedded] = backends().run
const DEBUG = 20

t.test('at debug: refused upgrades with their reason, sockets opened and closed with their code, no token', async (t) => {
  const logs = captureLogs('debug')
  const { api, baseUrl } = await startTestServer(t, embedded!, { logger: logs.logger })
  const user = await api.user('logs')
  const from = logs.lines.length
  const forged = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.forged-signature'

  t.equal((await refusedUpgrade(baseUrl, { token: forged, via: 'query' })).status, 401)
  t.equal((await refusedUpgrade(baseUrl, { token: forged, via: 'header' })).status, 401)
  const socket = await connect(baseUrl, user.token, { via: 'query' })
  socket.ws.close(1000)
  await socket.closed
  await waitUntil(() => logs.lines.some((line) => line.msg === 'socket closed'), 5000, 'the close logged')

  const lines = logs.lines.slice(from)
  const refused = lines.filter((line) => line.msg === 'upgrade refused')
  t.equal(refused.length, 2, 'each refusal logged')
  for (const line of refused) t.match(line, { level: DEBUG, reason: 'unauthorized', status: 401, why: 'invalid token' })
  t.match(lines.find((line) => line.msg === 'socket opened'), { level: DEBUG, userId: user.id })
  t.match(lines.find((line) => line.msg === 'socket closed'), { level: DEBUG, userId: user.id, code: 1000, seconds: Number })
  t.notOk(logs.text().includes(forged) || logs.text().includes('forged-signature'), 'the refused token is never logged')
  t.notOk(logs.text().includes(user.token), 'the accepted token is never logged')
})

t.test('at info: nothing per socket', async (t) => {
  const logs = captureLogs('info')
  const { api, baseUrl } = await startTestServer(t, embedded!, { logger: logs.logger })
  const user = await api.user('quiet')
  const from = logs.lines.length
  t.equal((await refusedUpgrade(baseUrl, { token: 'nope' })).status, 401)
  const socket = await connect(baseUrl, user.token)
  await socket.close()
  t.same(logs.lines.slice(from).filter((line) => /socket|upgrade/.test(line.msg)), [], 'no socket lines')
})
