import { existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { connect } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { createClient } from '../helpers/http.js'
import { ENTRY, spawnServer, TSX_LOADER, type ServerProcess } from '../helpers/spawn.js'

function tempDir (t: Test, prefix: string): string {
  // realpath: macOS-style /tmp symlinks would otherwise make path comparisons with the server's log fail.
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The environment of a development server on a loopback port chosen by the OS. */
function devEnv (dataDir: string): Record<string, string> {
  return { HOST: '127.0.0.1', PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'info' }
}

const msgs = (server: ServerProcess): string[] => server.logs.map((line) => line.msg)

/** stderr split into its non-empty lines. */
const stderrLines = (server: ServerProcess): string[] => server.stderr().split('\n').filter((line) => line.trim() !== '')

t.test('a server\'s life on one DATA_DIR', async (t) => {
  const outer = t
  // One DATA_DIR for every step: each restart also checks what the previous run left behind.
  const dataDir = tempDir(t, 'chat-process-')
  const credentials = { username: 'survivor', password: 'correct-horse-battery' }
  let token = ''
  let userId = ''

  t.test('starts on an empty DATA_DIR with the embedded database', async (t) => {
    const server = spawnServer(t, { env: devEnv(dataDir) })
    const port = await server.listening()
    const listening = server.logs.find((line) => line.msg.startsWith('listening on'))
    t.match(listening, { port, host: '127.0.0.1', database: `embedded (${dataDir})` })
    const api = createClient(`http://127.0.0.1:${port}`)
    t.same((await api.request('GET', '/health')).body, { status: 'ok' })
    t.equal((await api.request('GET', '/health')).status, 200)
    t.equal((await api.request('GET', '/ready')).status, 200)
    t.ok(existsSync(join(dataDir, 'jwt-secret')), 'a development secret was generated')

    const registered = await api.request('POST', '/auth/register', { json: credentials })
    t.equal(registered.status, 201)
    userId = registered.body.id
    const login = await api.request('POST', '/auth/login', { json: credentials })
    t.equal(login.status, 200)
    token = login.body.token
    t.equal((await api.request('GET', '/rooms', { token })).status, 200)

    const start = performance.now()
    const exit = await server.stop('SIGTERM', 10_000)
    t.comment(`SIGTERM to exit: ${(performance.now() - start).toFixed(0)} ms`)
    t.same(exit, { code: 0, signal: null }, 'SIGTERM: exit code 0')
    t.ok(msgs(server).includes('shutting down'), 'says it is shutting down')
    t.ok(msgs(server).includes('stopped'), 'logs "stopped"')
    t.notOk(existsSync(join(dataDir, 'server.pid')), 'the DATA_DIR lock is released')
  })

  let running: ServerProcess | undefined
  let port = 0

  t.test('after a restart the old token is valid and the user is still there', async (t) => {
    // Owned by the outer test: it keeps running through the next subtests and dies at the outer teardown.
    running = spawnServer(outer, { env: devEnv(dataDir) })
    port = await running.listening()
    const api = createClient(`http://127.0.0.1:${port}`)
    const rooms = await api.request('GET', '/rooms', { token })
    t.equal(rooms.status, 200, 'the token signed before the restart is accepted')
    t.ok(rooms.body.rooms.some((room: { id: string }) => room.id === 'general'))
    const login = await api.request('POST', '/auth/login', { json: credentials })
    t.equal(login.status, 200, 'the user survived')
    t.equal(login.body.user.id, userId)
    t.equal((await api.request('POST', '/auth/register', { json: credentials })).status, 409, 'and the name is still taken')
  })

  t.test('a second server on the same DATA_DIR refuses to start', async (t) => {
    if (running === undefined) return t.fail('no running server')
    const second = spawnServer(t, { env: devEnv(dataDir) })
    const exit = await second.exited(60_000)
    t.same(exit, { code: 1, signal: null })
    t.notOk(msgs(second).some((msg) => msg.startsWith('listening on')))
    t.match(second.stdout(), /in use by process/, 'the log says why')
    t.equal((await createClient(`http://127.0.0.1:${port}`).request('GET', '/health')).status, 200, 'the first one is unaffected')
  })

  t.test('after SIGKILL a new server takes over the stale lock, data intact', async (t) => {
    if (running === undefined) return t.fail('no running server')
    const api = createClient(`http://127.0.0.1:${port}`)
    // Acknowledged just before the crash: it must be on disk.
    const late = { username: 'acked_before_crash', password: 'correct-horse-battery' }
    t.equal((await api.request('POST', '/auth/register', { json: late })).status, 201)
    t.same(await running.stop('SIGKILL'), { code: null, signal: 'SIGKILL' })
    t.ok(existsSync(join(dataDir, 'server.pid')), 'the crash left its lock behind')

    const next = spawnServer(t, { env: devEnv(dataDir) })
    const nextPort = await next.listening()
    const after = createClient(`http://127.0.0.1:${nextPort}`)
    t.equal((await after.request('POST', '/auth/login', { json: credentials })).status, 200, 'the first user')
    t.equal((await after.request('POST', '/auth/login', { json: late })).status, 200, 'the user registered just before the crash')
    t.equal((await after.request('GET', '/rooms', { token })).status, 200, 'the token too')

    const exit = await next.stop('SIGINT', 10_000)
    t.same(exit, { code: 0, signal: null }, 'SIGINT: exit code 0')
    t.ok(msgs(next).includes('stopped'), 'logs "stopped"')
  })

  // A client that drops mid-upload must not leave a request "in flight" for ever: shutdown would
  // wait out its drain timeout, and with nothing else keeping the event loop alive the process
  // ends without closing the database.
  t.test('SIGTERM after a client aborted an upload still stops cleanly', async (t) => {
    const server = spawnServer(t, { env: devEnv(dataDir) })
    const port = await server.listening()
    const socket = connect(port, '127.0.0.1')
    socket.on('error', () => {})
    socket.write('POST /auth/register HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"username":')
    await new Promise((resolve) => setTimeout(resolve, 200))
    socket.destroy()
    await new Promise((resolve) => setTimeout(resolve, 200))
    const exit = await server.stop('SIGTERM', 5_000).catch((error: Error) => error)
    t.same(exit, { code: 0, signal: null }, 'exit code 0 within 5 s')
    t.ok(msgs(server).includes('stopped'), 'logs "stopped"')
    t.notOk(existsSync(join(dataDir, 'server.pid')), 'the database was closed and the lock released')
  })
})

t.test('invalid configuration: exit 1 and one stderr line per problem', async (t) => {
  const dataDir = tempDir(t, 'chat-process-bad-')
  const server = spawnServer(t, { env: { ...devEnv(dataDir), PORT: 'abc', LOG_LEVEL: 'loud' } })
  t.same(await server.exited(), { code: 1, signal: null })
  const lines = stderrLines(server)
  t.equal(lines.length, 2, `two lines:\n${server.stderr()}`)
  t.equal(lines.filter((line) => /\bPORT\b/.test(line) && !/LOG_LEVEL/.test(line)).length, 1, 'one line names PORT')
  t.equal(lines.filter((line) => /\bLOG_LEVEL\b/.test(line) && !/\bPORT\b/.test(line)).length, 1, 'one line names LOG_LEVEL')
  t.notMatch(server.stderr(), /\n\s+at /, 'no stack trace')
  t.notOk(existsSync(join(dataDir, 'server.pid')), 'nothing was started')
})

t.test('production without JWT_SECRET: exit 1 naming JWT_SECRET', async (t) => {
  const dataDir = tempDir(t, 'chat-process-prod-')
  const server = spawnServer(t, { env: { ...devEnv(dataDir), NODE_ENV: 'production' } })
  t.same(await server.exited(), { code: 1, signal: null })
  const lines = stderrLines(server)
  t.equal(lines.length, 1, server.stderr())
  t.match(lines[0], /JWT_SECRET/)
  t.notOk(existsSync(join(dataDir, 'jwt-secret')), 'no secret was generated')
})

t.test('.env in the working directory is read; real variables win', async (t) => {
  const cwd = tempDir(t, 'chat-process-cwd-')
  // The cwd has no node_modules, so tsx is given as a file URL; the entry by absolute path.
  const spawnIn = (t: Test, env: Record<string, string>): ServerProcess => spawnServer(t, { cwd, env, loader: TSX_LOADER, entry: ENTRY })

  t.test('a bad value in .env stops the start', async (t) => {
    writeFileSync(join(cwd, '.env'), 'PORT=abc\nLOG_LEVEL=info\n')
    const server = spawnIn(t, {})
    t.same(await server.exited(), { code: 1, signal: null })
    t.match(server.stderr(), /PORT/)
  })

  t.test('values come from .env unless the environment sets them', async (t) => {
    // PORT and LOG_LEVEL are invalid in the file: the server can only start if the environment wins.
    writeFileSync(join(cwd, '.env'), 'HOST=127.0.0.1\nDATA_DIR=./dotenv-data\nPORT=abc\nLOG_LEVEL=loud\n')
    const server = spawnIn(t, { PORT: '0', LOG_LEVEL: 'info' })
    const port = await server.listening()
    const dataDir = join(cwd, 'dotenv-data')
    t.match(server.logs.find((line) => line.msg.startsWith('listening on')), { host: '127.0.0.1', database: `embedded (${dataDir})` })
    t.ok(existsSync(join(dataDir, 'jwt-secret')), 'DATA_DIR from .env, relative to the cwd')
    t.equal((await createClient(`http://127.0.0.1:${port}`).request('GET', '/health')).status, 200)
    t.same(await server.stop('SIGTERM'), { code: 0, signal: null })
  })
})
