// Runs PGlite off the main event loop and serves it over the Postgres wire protocol, so the app
// talks to the embedded database through `pg` exactly as it talks to a real server.
import { PGlite } from '@electric-sql/pglite'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'
import { parentPort, workerData } from 'node:worker_threads'

export interface EmbeddedWorkerData { readonly dataDir: string, readonly socketPath: string }
export type EmbeddedWorkerMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'error', readonly message: string }
  | { readonly type: 'closed' }

const { dataDir, socketPath } = workerData as EmbeddedWorkerData
const port = parentPort
if (port === null) throw new Error('embedded-worker must run as a worker thread')
const post = (message: EmbeddedWorkerMessage): void => port.postMessage(message)

try {
  // relaxedDurability stays off: an ack means the commit reached the files.
  const db = await PGlite.create({ dataDir })
  // One connection only: pglite-socket multiplexes connections at query level, which would
  // interleave one client's statements into another's open transaction.
  const server = new PGLiteSocketServer({ db, path: socketPath, maxConnections: 1 })
  await server.start()
  port.on('message', (message: unknown) => {
    if (message !== 'close') return
    void (async () => {
      await server.stop()
      await db.close()
      post({ type: 'closed' })
    })()
  })
  post({ type: 'ready' })
} catch (error) {
  post({ type: 'error', message: error instanceof Error ? error.message : String(error) })
}
