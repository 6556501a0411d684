import { us_listen_socket_close, us_socket_local_port, type HttpRequest, type HttpResponse, type RecognizedString, type TemplatedApp, type us_listen_socket } from 'uWebSockets.js'

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

/** The port could not be bound: another process holds it, or the address is not this machine's. */
export class ListenError extends Error {
  constructor (host: string, port: number) {
    super(`PORT ${port} on ${host} is already in use (another server?) or the address is not available`)
    this.name = 'ListenError'
  }
}

/** libusockets' LIBUS_LISTEN_EXCLUSIVE_PORT: bind without SO_REUSEPORT. */
const EXCLUSIVE_PORT = 1
/** uWS takes (host, port, options, cb) at runtime; its typings only list (port, options, cb). */
type ListenWithHost = (host: RecognizedString, port: number, options: number, cb: (socket: us_listen_socket | false) => void) => TemplatedApp

export async function startListener (options: ListenerOptions): Promise<Listener> {
  const { app } = options
  app.any('/*', options.http)
  // uWS binds with SO_REUSEPORT by default, so a second server on a port in use would start and
  // the kernel would split connections between the two: bind exclusively instead.
  const listen = app.listen.bind(app) as unknown as ListenWithHost
  const token = await new Promise<us_listen_socket | false>((resolve) => {
    listen(options.host, options.port, EXCLUSIVE_PORT, resolve)
  })
  if (token === false) {
    app.close()
    throw new ListenError(options.host, options.port)
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
