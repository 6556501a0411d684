import { createServer } from 'node:net'
import { delay } from './chat.js'

/** A port free a moment ago on 127.0.0.1: a server that restarts on it keeps its URL. */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no free port')
  return address.port
}

/** Waits until `port` can be bound again (the server binds it exclusively), for at most `ms`. */
export async function waitForFreePort (port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer()
      server.once('error', () => resolve(false))
      server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)))
    })
    if (free) return
    if (Date.now() > deadline) throw new Error(`port ${port} still in use after ${ms} ms`)
    await delay(50)
  }
}
