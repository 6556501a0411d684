import { us_listen_socket_close, us_socket_local_port, type HttpRequest, type HttpResponse, type TemplatedApp, type us_listen_socket } from 'uWebSockets.js'

export interface ListenerOptions {
  /** The uWS app to listen with; routes such as `/ws` may already be on it. */
  readonly app: TemplatedApp
  readonly host: string
  readonly port: number
  /** Serves every request that no other route (such as `/ws`) takes. */
  readonly http: (res: HttpResponse, req: HttpRequest) => void
}

/** The one uWS listener in front of everything. */
export interface Listener {
  readonly app: TemplatedApp
  /** The bound port (useful with port 0). */
  readonly port: number
  /** Stops accepting connections; open ones continue. Idempotent. */
  stopAccepting (): void
  /** Closes every connection at once. */
  closeAll (): void
}

export async function startListener (options: ListenerOptions): Promise<Listener> {
  const { app } = options
  app.any('/*', options.http)
  const token = await new Promise<us_listen_socket | false>((resolve) => {
    app.listen(options.host, options.port, resolve)
  })
  if (token === false) {
    app.close()
    throw new Error(`cannot listen on ${options.host}:${options.port} (address in use or not available)`)
  }
  let listening: us_listen_socket | null = token
  const stopAccepting = (): void => {
    if (listening === null) return
    us_listen_socket_close(listening)
    listening = null
  }
  return {
    app,
    port: us_socket_local_port(token),
    stopAccepting,
    closeAll () {
      stopAccepting()
      app.close()
    }
  }
}
