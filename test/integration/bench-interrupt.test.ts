import { execFileSync, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import pg from 'pg'
import t from 'tap'
import { ROOT, TSX_LOADER } from '../helpers/spawn.js'

// Ctrl-C in the middle of `npm run bench` on Postgres stops the servers it started and drops the
// databases it created for them: an interrupted run leaves nothing behind on the user's Postgres.

const adminUrl = process.env.TEST_DATABASE_URL ?? ''

t.test('Ctrl-C during a Postgres run stops its servers and drops its databases', { skip: adminUrl === '' ? 'postgres: TEST_DATABASE_URL is not set' : false }, async (t) => {
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: adminUrl }
  delete env.NODE_OPTIONS
  const bench = spawn(process.execPath, ['--import', TSX_LOADER, 'bench/run.ts', '--only', 'ingest'], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] })
  // 'close': exited, and everything it wrote to stderr has been read.
  const exited = new Promise<number | null>((resolve) => bench.once('close', (code) => resolve(code)))
  t.teardown(() => { bench.kill('SIGKILL') })

  const databases = async (): Promise<string[]> => {
    const client = new pg.Client({ connectionString: adminUrl })
    await client.connect()
    try {
      const { rows } = await client.query<{ datname: string }>('select datname from pg_database where datname like $1', [`chat_bench\\_${bench.pid}\\_%`])
      return rows.map((r) => r.datname)
    } finally {
      await client.end()
    }
  }

  // Mid-run: the server is up on its own database and the sockets are opening.
  const lines = createInterface({ input: bench.stderr })
  let stderr = ''
  await new Promise<void>((resolve, reject) => {
    lines.on('line', (line) => {
      stderr += `${line}\n`
      if (line.includes('ingest: chat: opening')) resolve()
    })
    void exited.then(() => reject(new Error(`the bench ended before the server was up:\n${stderr}`)))
  })
  t.equal((await databases()).length, 1, 'the run database exists before the interrupt')
  // Its children running bench scripts (tsx's esbuild service is a child too, and not ours to stop).
  const servers = execFileSync('pgrep', ['-P', String(bench.pid), '-f', '/bench/'], { encoding: 'utf8' }).trim().split('\n').map(Number)
  t.ok(servers.length > 0, 'a server process runs before the interrupt')

  bench.kill('SIGINT')
  t.equal(await exited, 130, 'the bench exits with 130, as an interrupted command does')
  t.same(await databases(), [], 'its databases are dropped')
  const alive = servers.filter((pid) => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  })
  t.same(alive, [], 'its servers are stopped')
  t.match(stderr, /interrupted: stopping the servers and dropping the run databases/, 'it says what it does')
})
