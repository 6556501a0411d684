import { createServer, connect, type Server, type Socket } from 'node:net'

/** A TCP proxy in front of a database so a test can take the database away and give it back. */
export interface TcpProxy {
  readonly port: number
  /** Drops every open connection and refuses new ones, as a crashed or unreachable server would. */
  cut (): void
  restore (): void
  /**
   * Silences the connections open now whose client had sent SUBSCRIBE (any case, SSUBSCRIBE too):
   * they stay open and the client's bytes still reach the server, but the server's are discarded,
   * as with a pub/sub connection left dead by a failover. Later connections are untouched.
   * Returns how many connections it silenced.
   */
  stallSubscribers (): number
  /** The same for the open connections that never sent SUBSCRIBE (a publisher's, say). */
  stallOthers (): number
  close (): Promise<void>
}

/** A client connection and its upstream, with what the proxy learnt of the client's bytes. */
interface Pair {
  readonly upstream: Socket
  readonly client: Socket
  subscriber: boolean
  /** The end of the client's last chunk, so a SUBSCRIBE split across two chunks is still seen. */
  tail: string
}

export async function startTcpProxy (targetHost: string, targetPort: number): Promise<TcpProxy> {
  return await startProxy(() => connect(targetPort, targetHost))
}

/** The same in front of a Unix socket (the embedded database's), listening on TCP. */
export async function startUnixSocketProxy (path: string): Promise<TcpProxy> {
  return await startProxy(() => connect(path))
}

async function startProxy (dial: () => Socket): Promise<TcpProxy> {
  let up = true
  const sockets = new Set<Socket>()
  const pairs = new Set<Pair>()
  const track = (socket: Socket): void => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
  }
  const server: Server = createServer((client) => {
    track(client)
    if (!up) {
      client.destroy()
      return
    }
    const upstream = dial()
    track(upstream)
    const pair: Pair = { upstream, client, subscriber: false, tail: '' }
    pairs.add(pair)
    client.on('data', (chunk: Buffer) => {
      if (pair.subscriber) return
      const text = pair.tail + chunk.toString('latin1')
      pair.subscriber = /subscribe/i.test(text)
      pair.tail = text.slice(-16)
    })
    client.pipe(upstream).pipe(client)
    client.once('close', () => { upstream.destroy(); pairs.delete(pair) })
    upstream.once('close', () => client.destroy())
  })
  const stall = (subscribers: boolean): number => {
    let stalled = 0
    for (const pair of pairs) {
      if (pair.subscriber !== subscribers) continue
      pair.upstream.unpipe(pair.client)
      // Keep reading and discard, so the server is not slowed down by a full socket buffer.
      pair.upstream.on('data', () => {})
      pair.upstream.resume()
      stalled++
    }
    return stalled
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('proxy has no port')
  return {
    port: address.port,
    cut () {
      up = false
      for (const socket of sockets) socket.destroy()
    },
    restore () {
      up = true
    },
    stallSubscribers: () => stall(true),
    stallOthers: () => stall(false),
    async close () {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** A proxy in front of the server a URL names; returns the URL that goes through it instead. */
export async function proxyUrl (url: string, defaultPort: number): Promise<{ proxy: TcpProxy, url: string }> {
  const target = new URL(url)
  const proxy = await startTcpProxy(target.hostname, Number(target.port === '' ? defaultPort : target.port))
  const proxied = new URL(url)
  proxied.hostname = '127.0.0.1'
  proxied.port = String(proxy.port)
  return { proxy, url: proxied.toString() }
}
