// What every bench server process does around its work, whatever it is (ours or a peer): print one
// ready line on stdout for bench/server-process.ts, stop cleanly on SIGTERM/SIGINT, and run a full
// garbage collection on SIGUSR2 when started with --expose-gc, so memory figures count what is
// held, not garbage not yet collected; and answer the bench's requests over the IPC channel it
// opens (`BenchProcess.request`), for what only the process itself can measure.

/** A request's name → its answer; a name the process has no handler for is answered with null. */
export type RequestHandlers = Readonly<Record<string, () => unknown>>

/** What the bench sends over IPC, and what comes back. */
export interface BenchRequest { readonly id: number, readonly name: string }
export interface BenchAnswer { readonly id: number, readonly value: unknown }

/** Prints `ready` as the single stdout line and wires the signals; `close` runs once, then the process exits. */
export function serveUntilSignalled (ready: object, close: () => Promise<void>, handlers: RequestHandlers = {}): void {
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    close().then(() => process.exit(0), (error: unknown) => {
      process.stderr.write(`${process.argv[1] ?? 'bench server'}: close failed: ${String(error)}\n`)
      process.exit(1)
    })
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  const { gc } = globalThis as { gc?: () => void }
  if (gc !== undefined) process.on('SIGUSR2', () => { gc() })
  process.on('message', (request: BenchRequest) => {
    const answer: BenchAnswer = { id: request.id, value: handlers[request.name]?.() ?? null }
    process.send?.(answer)
  })
  process.stdout.write(`${JSON.stringify(ready)}\n`)
}

/** The value after `--name` on the command line, or `fallback`. */
export function argument (name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`)
  return at > 0 && at + 1 < process.argv.length ? process.argv[at + 1]! : fallback
}
