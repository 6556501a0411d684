import t from 'tap'
import { createNodeDispatch } from '../../src/http/node-dispatch.js'
import type { BridgedRequest } from '../../src/http/uws-bridge.js'

const request = (overrides: Partial<BridgedRequest> = {}): BridgedRequest =>
  ({ method: 'POST', url: '/x?y=1', headers: { 'content-type': 'text/plain' }, body: Buffer.from('hello'), remoteAddress: '203.0.113.5', ...overrides })

t.test('the listener sees the request, its body as a stream, and the client address', async (t) => {
  const dispatch = createNodeDispatch((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      res.writeHead(201, { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] })
      res.end(JSON.stringify({ method: req.method, url: req.url, body: Buffer.concat(chunks).toString(), ip: req.socket.remoteAddress }))
    })
  })
  const response = await dispatch(request())
  t.equal(response.statusCode, 201)
  t.same(response.headers['set-cookie'], ['a=1', 'b=2'])
  t.same(JSON.parse(response.body.toString()), { method: 'POST', url: '/x?y=1', body: 'hello', ip: '203.0.113.5' })
})

t.test('a request without a body ends at once', async (t) => {
  const dispatch = createNodeDispatch((req, res) => {
    let bytes = 0
    req.on('data', (chunk: Buffer) => { bytes += chunk.length })
    req.on('end', () => res.end(String(bytes)))
  })
  t.equal((await dispatch(request({ body: undefined }))).body.toString(), '0')
})

t.test('setHeader, write and end(null) compose; finish and close follow the answer', async (t) => {
  const events: string[] = []
  const dispatch = createNodeDispatch((req, res) => {
    res.setHeader('X-Thing', 'v')
    t.ok(res.hasHeader('x-thing'))
    res.statusCode = 202
    res.on('finish', () => events.push('finish'))
    res.on('close', () => events.push('close'))
    res.write('ab')
    res.write(Buffer.from('cd'))
    res.end(null as unknown as string)
    res.end('ignored: already ended')
  })
  const response = await dispatch(request())
  t.equal(response.statusCode, 202)
  t.equal(response.headers['x-thing'], 'v')
  t.equal(response.body.toString(), 'abcd')
  t.same(events, [], 'not yet: finish comes after the caller has the response')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(events, ['finish', 'close'])
})

t.test('a listener that throws or destroys the response fails the dispatch', async (t) => {
  await t.rejects(createNodeDispatch(() => { throw new Error('boom') })(request()), /boom/)
  await t.rejects(createNodeDispatch((req, res) => { res.destroy(new Error('gone')) })(request()), /gone/)
  await t.rejects(createNodeDispatch((req, res) => { res.destroy() })(request()), /destroyed/)
})
