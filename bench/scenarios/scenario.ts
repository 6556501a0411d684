// What every scenario gets from the runner, and the steps they share: open and join many sockets.
// The runner starts each WebSocket server once and runs every scenario that measures it in turn
// (bench/run.ts), so a run pays each server's start-up once.
import type { Profile } from '../profiles.js'
import type { ResultRow, ScenarioName, WebSocketServerName } from '../report/results.js'
import { eachLimited, type BenchServer } from '../server-process.js'
import { openSocket, type LoadSocket, type SocketEvents } from '../load/socket-client.js'

export interface ScenarioContext {
  readonly profile: Profile
  /** A Postgres admin URL (each server gets a fresh database), or '' for embedded storage. */
  readonly adminUrl: string
  /** A transient status line (overwritten on a terminal). */
  readonly progress: (line: string) => void
  /** A line that stays: a step's result, a server starting. */
  readonly log: (line: string) => void
  readonly record: (row: ResultRow) => void
}


/** A scenario over WebSocket servers: run once per server it lists, on a server already started. */
export interface SocketScenario {
  readonly name: ScenarioName
  readonly servers: readonly WebSocketServerName[]
  /** How many users (one socket each) it needs on the server. */
  users (profile: Profile): number
  /** Read rooms it needs seeded on the server (ours only): the first `rooms` users' rooms of `messages` messages. */
  readRooms? (profile: Profile): { readonly rooms: number, readonly messages: number }
  run (context: ScenarioContext, server: BenchServer): Promise<void>
}

/** A scenario that starts its own servers (REST: other server processes). */
export interface StandaloneScenario {
  readonly name: ScenarioName
  run (context: ScenarioContext): Promise<void>
}

/** Opens one socket per user (the first `count`), `concurrency` upgrades at a time. */
export async function openSockets (server: BenchServer, count: number, events: SocketEvents, concurrency = 100,
  progress?: (opened: number) => void): Promise<LoadSocket[]> {
  if (server.users.length < count) throw new Error(`${server.name} has ${server.users.length} users, ${count} needed`)
  const sockets = new Array<LoadSocket>(count)
  let opened = 0
  try {
    await eachLimited(server.users.slice(0, count), concurrency, async (user, i) => {
      sockets[i] = await openSocket(server, user, i, events)
      if (++opened % 1000 === 0) progress?.(opened)
    })
  } catch (error) {
    closeAll(sockets)
    throw error
  }
  return sockets
}

export async function joinAll (sockets: readonly LoadSocket[], roomOf: (socket: LoadSocket) => string, concurrency = 100): Promise<void> {
  await eachLimited(sockets, concurrency, async (socket) => { await socket.join(roomOf(socket)) })
}

export function closeAll (sockets: ReadonlyArray<LoadSocket | undefined>): void {
  for (const socket of sockets) socket?.close()
}

export function thousands (value: number): string { return value.toLocaleString('en-US') }
