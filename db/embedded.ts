import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { EmbeddedWorkerData, EmbeddedWorkerMessage } from './embedded-worker.js'

/** The embedded database as seen from the app: a Postgres socket directory for `pg`, and a way to stop it. */
export interface EmbeddedPostgres {
  /** Directory holding `.s.PGSQL.5432`; pass it to `pg` as `host`. */
  readonly socketDir: string
  readonly port: 5432
  /** Closes PGlite cleanly (flushes its files) and ends the worker. Idempotent. */
  stop (): Promise<void>
}

const LOCK_FILE = 'server.pid'
const START_TIMEOUT_MS = 60_000

/**
 * Starts PGlite stored in `<dataDir>/pgdata` in a worker thread. The database is served on a Unix
 * socket in a private temporary directory, because pglite-socket has no authentication.
 */
export async function startEmbeddedPostgres (dataDir: string): Promise<EmbeddedPostgres> {
  mkdirSync(dataDir, { recursive: true })
  const releaseLock = lockDataDir(dataDir)
  const socketDir = mkdtempSync(join(tmpdir(), 'chat-pg-'))
  const extension = extname(fileURLToPath(import.meta.url))
  const workerFile = new URL(`./embedded-worker${extension}`, import.meta.url)
  const data: EmbeddedWorkerData = { dataDir: join(dataDir, 'pgdata'), socketPath: join(socketDir, '.s.PGSQL.5432') }
  const worker = extension === '.ts'
    // From TypeScript sources (tests, dev) the worker registers tsx first; Node 20 resolves a
    // worker's entry file before any --import hook would run, hence the dynamic import.
    ? new Worker(`import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => tsx.tsImport(${JSON.stringify(workerFile.href)}, ${JSON.stringify(import.meta.url)}))`,
      { eval: true, workerData: data })
    : new Worker(workerFile, { workerData: data })

  // The pool's sockets keep the process alive while the database is in use; an abandoned start must not.
  worker.unref()

  const cleanup = (): void => {
    rmSync(socketDir, { recursive: true, force: true })
    releaseLock()
  }

  try {
    await new Promise<void>((resolve, reject) => {
      const settle = (error?: Error): void => {
        clearTimeout(timer)
        worker.off('error', settle).off('exit', onExit).off('message', onMessage)
        if (error === undefined) resolve()
        else reject(error)
      }
      const onExit = (code: number): void => settle(new Error(`embedded database exited with code ${code}`))
      const onMessage = (message: EmbeddedWorkerMessage): void => settle(message.type === 'ready'
        ? undefined
        : new Error(`embedded database failed to start: ${message.type === 'error' ? message.message : message.type}`))
      const timer = setTimeout(() => settle(new Error('embedded database did not start in time')), START_TIMEOUT_MS)
      worker.on('error', settle).on('exit', onExit).on('message', onMessage)
    })
  } catch (error) {
    await worker.terminate()
    cleanup()
    throw error
  }

  let stopping: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopping ??= (async () => {
      const closed = new Promise<void>((resolve) => {
        worker.on('message', (message: EmbeddedWorkerMessage) => { if (message.type === 'closed') resolve() })
        worker.once('exit', () => resolve())
      })
      worker.postMessage('close')
      await closed
      await worker.terminate()
      cleanup()
    })()
    return stopping
  }
  return { socketDir, port: 5432, stop }
}

/** Refuses a second server on the same DATA_DIR (two PGlite instances on one directory corrupt it); a lock left by a dead process is taken over. */
function lockDataDir (dataDir: string): () => void {
  const file = join(dataDir, LOCK_FILE)
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' })
      return () => rmSync(file, { force: true })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const owner = Number(readFileSync(file, 'utf8'))
      if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) {
        throw new Error(`DATA_DIR ${dataDir} is in use by process ${owner}`)
      }
      rmSync(file, { force: true })
    }
  }
  throw new Error(`could not lock DATA_DIR ${dataDir}`)
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
