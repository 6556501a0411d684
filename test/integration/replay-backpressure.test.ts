import t from 'tap'
import { backends } from '../helpers/backends.js'
import { startTestServer } from '../helpers/server.js'
import { connect } from '../helpers/socket.js'

// About the socket's send buffer, not the database: the embedded backend is enough here.
const [backend] = backends().run
if (backend === undefined) throw new Error('no backend')

t.test('a replay larger than WS_MAX_BACKPRESSURE waits for the client instead of closing it as too slow', async (t) => {
  const { baseUrl, api, server } = await startTestServer(t, backend, {
    env: { WS_MAX_BACKPRESSURE: '65536', WS_RATE: '100000', WS_BURST: '100000' }
  })
  const user = await api.user()
  const writer = await connect(baseUrl, user.token)
  t.teardown(async () => await writer.close())
  await writer.request({ type: 'join', room: 'general' })
  const total = 1500
  const body = 'z'.repeat(4000)
  for (let i = 0; i < total; i++) writer.send({ type: 'message', room: 'general', body, clientMsgId: `big-${i}` })
  for (let i = 1; i <= total; i++) {
    const ack = await writer.next('ack', 20_000)
    if (ack.seq !== i) t.fail(`ack ${String(ack.seq)}, expected ${i}`)
  }

  // 1500 × 4 KB is 6 MB of replay, about 90 times the socket's backpressure limit, and the reader
  // stops reading for a moment, so the kernel's buffers fill up and uWS has to queue.
  const reader = await connect(baseUrl, user.token)
  t.teardown(async () => await reader.close())
  const raw = (reader.ws as unknown as { _socket: { pause: () => void, resume: () => void } })._socket
  reader.send({ type: 'join', room: 'general', afterSeq: 0, ref: 'j' })
  raw.pause()
  await new Promise((resolve) => setTimeout(resolve, 1000))
  raw.resume()
  const joined = await reader.next((f) => f.ref === 'j', 30_000)
  t.match(joined, { type: 'joined', lastSeq: total })
  const seqs = reader.received.filter((f) => f.type === 'message').map((f) => f.seq as number)
  t.same(seqs, Array.from({ length: total }, (_, i) => i + 1), 'every message replayed, in order, before joined')
  t.match(await reader.request({ type: 'ping' }), { type: 'pong' }, 'the reader is still connected')
  t.equal(server.app.realtime.stats().gateway.slowClosed, 0, 'nobody was closed as too slow')
})
