import { createServer, connect, type Server, type Socket } from 'node:net'

/** A TCP proxy in front of a database so a test can take the database away and give it back. */
export interface TcpProxy {
  readonly port: number
  /** Drops every open connection and refuses new ones, as a crashed or unreachable server would. */
  cut (): void
  restore (): void
  close (): Promise<void>
}

export async function startTcpProxy (targetHost: string, targetPort: number): Promise<TcpProxy> {
  let up = true
  const sockets = new Set<Socket>()
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
    const upstream = connect(targetPort, targetHost)
    track(upstream)
    client.pipe(upstream).pipe(client)
    client.once('close', () => upstream.destroy())
    upstream.once('close', () => client.destroy())
  })
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
