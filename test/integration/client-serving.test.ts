import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build } from 'esbuild'
import Fastify from 'fastify'
import t from 'tap'
import clientRoutes from '../../plugins/routes/client.js'
import { repositoryRoot } from '../../src/http/static-file.js'
import { eachBackend, startTestServer } from '../helpers/server.js'

// `npm test` builds the client first (`pretest`); by hand, run `node client/build.mjs` before this file.

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache'
}

/** A GET with the path sent exactly as written: fetch would resolve `..` and `%2e%2e` before sending. */
async function rawGet (port: number, path: string): Promise<{ status: number, contentType: string, body: string }> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), body }))
    })
    req.on('error', reject)
    req.end()
  })
}

eachBackend(t, async (t, backend) => {
  const { api, server } = await startTestServer(t, backend)

  t.test('each file with its content type and the security headers', async (t) => {
    const files: Array<[string, RegExp]> = [
      ['/', /^text\/html; charset=utf-8$/],
      ['/client.js', /^application\/javascript; charset=utf-8$/],
      ['/client.d.ts', /^application\/typescript; charset=utf-8$/],
      ['/demo/app.js', /^application\/javascript; charset=utf-8$/],
      ['/demo/app.css', /^text\/css; charset=utf-8$/],
      ['/demo/favicon.svg', /^image\/svg\+xml/]
    ]
    for (const [path, type] of files) {
      const response = await api.request('GET', path)
      t.equal(response.status, 200, `${path} is served`)
      t.match(response.headers.get('content-type') ?? '', type, `${path} content type`)
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) t.equal(response.headers.get(name), value, `${path} ${name}`)
      t.ok(response.text.length > 0, `${path} has a body`)
    }
  })

  t.test('an unchanged file is a 304 for its ETag', async (t) => {
    const first = await api.request('GET', '/client.js')
    const etag = first.headers.get('etag')
    t.match(etag, /^"[\w-]+"$/)
    const again = await api.request('GET', '/client.js', { headers: { 'if-none-match': etag ?? '' } })
    t.equal(again.status, 304)
    t.equal(again.text, '')
    const other = await api.request('GET', '/client.js', { headers: { 'if-none-match': '"something-else"' } })
    t.equal(other.status, 200)
  })

  t.test('/client.js is one ES module without imports that exports ChatClient', async (t) => {
    const { text } = await api.request('GET', '/client.js')
    // Bundling it again lists every import it makes; packages stay external so none is resolved away.
    const result = await build({ stdin: { contents: text, loader: 'js' }, bundle: true, write: false, metafile: true, format: 'esm', packages: 'external', logLevel: 'silent' })
    const [input] = Object.values(result.metafile.inputs)
    t.same(input?.imports, [], 'no import statements')
    t.equal(input?.format, 'esm', 'an ES module')
    const module = await import(`data:text/javascript;base64,${Buffer.from(text).toString('base64')}`) as { ChatClient?: unknown }
    t.equal(typeof module.ChatClient, 'function', 'exports ChatClient')
  })

  t.test('the page has labelled Username and Password fields and the Register and Log in buttons', async (t) => {
    const { text } = await api.request('GET', '/')
    t.match(text, /<label for="username">Username<\/label>/)
    t.match(text, /<input id="username"[^>]*>/)
    t.match(text, /<label for="password">Password<\/label>/)
    t.match(text, /<input id="password"[^>]*type="password"/)
    t.match(text, /<label for="message"[^>]*>Message<\/label>/)
    t.match(text, /<button[^>]*>Register<\/button>/)
    t.match(text, /<button[^>]*>Log in<\/button>/)
    t.match(text, /<button[^>]*>Send<\/button>/)
    t.match(text, /<script type="module" src="\/demo\/app.js"><\/script>/)
    t.notMatch(text, /<script(?![^>]*\ssrc=)[^>]*>/, 'no inline script')
    t.notMatch(text, /<style|\sstyle=/, 'no inline style')
    const app = await api.request('GET', '/demo/app.js')
    t.match(app.text, /from '\/client\.js'/, 'the demo is built on /client.js')
    t.notMatch(app.text, /\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write/, 'the demo never parses strings as HTML')
  })

  t.test('anything else under /demo is a 404 in the error format, traversal included', async (t) => {
    const unknown = await api.request('GET', '/demo/x')
    t.equal(unknown.status, 404)
    t.same(Object.keys(unknown.body).sort(), ['error', 'message'])
    t.equal(unknown.body.error, 'not_found')
    const paths = [
      '/demo/../package.json',
      '/demo/%2e%2e/package.json',
      '/demo/%2E%2E/package.json',
      '/demo/..%2fpackage.json',
      '/demo/%2e%2e%2fpackage.json',
      '/demo/..%5cpackage.json',
      '/demo/..\\package.json',
      '/demo/%252e%252e/package.json',
      '/%2e%2e/package.json',
      '/demo/app.js/../../package.json',
      '/client.js/..%2f..%2fpackage.json',
      '/demo/',
      '/demo'
    ]
    for (const path of paths) {
      const response = await rawGet(server.port, path)
      t.ok(response.status === 404 || response.status === 400, `${path}: ${response.status}`)
      t.match(response.contentType, /^application\/json/, `${path} answers JSON`)
      t.notMatch(response.body, /chat-backend|devDependencies/, `${path} does not leak package.json`)
    }
  })
})

t.test('a missing build is a 503 that says to build, and the server keeps serving the rest', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'chat-client-serving-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  mkdirSync(join(root, 'demo'))
  writeFileSync(join(root, 'demo', 'index.html'), '<!doctype html><title>x</title>')
  const app = Fastify()
  await app.register(clientRoutes, { root })
  t.teardown(async () => await app.close())

  const missing = await app.inject({ method: 'GET', url: '/client.js' })
  t.equal(missing.statusCode, 503)
  t.match(missing.json().message, /npm run build/)
  t.equal(missing.headers['x-content-type-options'], 'nosniff')
  t.equal((await app.inject({ method: 'GET', url: '/' })).statusCode, 200)

  // Built while the server runs: found on the next request.
  mkdirSync(join(root, 'client', 'dist'), { recursive: true })
  writeFileSync(join(root, 'client', 'dist', 'client.js'), 'export class ChatClient {}\n')
  const built = await app.inject({ method: 'GET', url: '/client.js' })
  t.equal(built.statusCode, 200)
  t.equal(built.body, 'export class ChatClient {}\n')
})

t.test('the repository root is found from compiled and source locations alike', async (t) => {
  const root = repositoryRoot()
  t.equal(repositoryRoot(join(root, 'dist', 'src', 'http')), root)
  t.equal(repositoryRoot(join(root, 'src', 'http')), root)
})
