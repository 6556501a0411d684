// Pieces shared by the integration and black-box tests of the chat API: waiting, seq lists, the
// REST calls around rooms and history, frame checks, and the message burst of the process tests
// (crash, socket-shutdown). This file imports nothing from src/, plugins/ or db/, so that the
// black-box tests can use it; its Message is the JavaScript client's, a public type.
import { mkdtempSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import WebSocket from 'ws'
import type { ApiClient } from './http.js'
import { connect, type ConnectedSocket, type Frame, type SocketOptions, type TestSocket } from './socket.js'

/** A Message as API.md renders it (history, and `message` events without their `type`): the client's public type. */
import type { Message } from '../../client/src/types.js'
export type { Message }

/** A registered user and a token for it, as `ApiClient.user` returns them. */
export interface Account { readonly id: string, readonly username: string, readonly token: string }

/** Server env for tests that send bursts on purpose: a per-socket frame limit they never reach. */
export const HIGH_FRAME_RATE = { WS_RATE: '100000', WS_BURST: '100000' }

// ---------------------------------------------------------------------------------------------
// Waiting and number lists

/** Resolves after `ms` milliseconds. */
export async function delay (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/** Polls `check` every 5 ms until it holds; throws with `what` (a text, or made only on failure) after `ms`. */
export async function waitUntil (check: () => boolean, ms: number, what: string | (() => string)): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${typeof what === 'string' ? what : what()}`)
    await delay(5)
  }
}

/** The integers `from..to`, both included (empty when `to < from`). */
export function range (from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i)
}

/** Where two lists (of seqs, or ids) first differ, with the neighbourhood: short enough for a failure message. */
export function firstDifference (actual: ReadonlyArray<number | string>, expected: ReadonlyArray<number | string>): string {
  const n = Math.max(actual.length, expected.length)
  for (let i = 0; i < n; i++) {
    if (actual[i] !== expected[i]) return `length ${actual.length} vs ${expected.length}; first difference at #${i}: ${actual[i]} vs ${expected[i]} (around: ${JSON.stringify(actual.slice(Math.max(0, i - 3), i + 4))})`
  }
  return 'identical'
}

/** Asserts `actual` is exactly `expected` (seq lists): one assertion, with a short diagnostic instead of a huge diff. */
export function sameSeqs (t: Test, actual: ReadonlyArray<number | string>, expected: ReadonlyArray<number | string>, what: string): void {
  const same = actual.length === expected.length && actual.every((s, i) => s === expected[i])
  t.ok(same, what, same ? {} : { diagnostic: true, difference: firstDifference(actual, expected) })
}

// ---------------------------------------------------------------------------------------------
// Rooms and history over REST

/** Creates a room owned by `owner` (`POST /rooms`); throws unless it is created. */
export async function createRoom (api: ApiClient, owner: { token: string }, id: string, isPrivate = false): Promise<void> {
  const res = await api.request('POST', '/rooms', { token: owner.token, json: { id, private: isPrivate } })
  if (res.status !== 201) throw new Error(`create room ${id}: ${res.status} ${res.text}`)
}

/** The room's `lastSeq` (`GET /rooms/:id`). */
export async function roomLastSeq (api: ApiClient, token: string, room: string): Promise<number> {
  const res = await api.request<{ lastSeq: number }>('GET', `/rooms/${room}`, { token })
  if (res.status !== 200) throw new Error(`room ${room}: ${res.status} ${res.text}`)
  return res.body.lastSeq
}

/** Every stored message of a room, oldest first, paging forward through history 100 at a time. */
export async function readWholeHistory (api: ApiClient, token: string, room: string): Promise<Message[]> {
  const all: Message[] = []
  for (let after = 0; ;) {
    const res = await api.request<{ messages: Message[], hasMore: boolean }>('GET', `/rooms/${room}/messages?after=${after}&limit=100`, { token })
    if (res.status !== 200) throw new Error(`history of ${room}: ${res.status} ${res.text}`)
    all.push(...res.body.messages)
    const last = res.body.messages[res.body.messages.length - 1]
    if (!res.body.hasMore || last === undefined) return all
    after = last.seq
  }
}

let rooms = 0
/** A room id unique to this test process (1-64 of [A-Za-z0-9_.:-]): `prefix.label.pid.n`. */
export function uniqueRoomId (prefix: string, label: string): string {
  return `${prefix}.${label}.${process.pid}.${++rooms}`
}

// ---------------------------------------------------------------------------------------------
// Frames

/** A `message` event as the Message it carries. */
export function asMessage (frame: Frame): Message {
  const { type: _type, ...message } = frame
  return message as Message
}

/** The named fields of a frame (missing ones as undefined), to compare exactly while tolerating added fields. */
export function pickFields (frame: Frame | undefined, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const key of keys) out[key] = frame?.[key]
  return out
}

/** Asserts an error frame: its type, its code, a non-empty message and, when `ref` is given, the echoed ref. */
export function checkErrorFrame (t: Test, frame: Frame | undefined, code: string, ref: string | undefined, label: string): void {
  t.equal(frame?.type, 'error', `${label}: an error frame`)
  t.equal(frame?.code, code, `${label}: code ${code}`)
  t.ok(typeof frame?.message === 'string' && frame.message !== '', `${label}: a non-empty message`)
  if (ref !== undefined) t.equal(frame?.ref, ref, `${label}: ref echoed`)
}

/** Connects (with `welcome` taken) and closes the socket at `t`'s teardown: cleanly if that takes under a second, then for sure. */
export async function connectUntilTeardown (t: Test, baseUrl: string, token: string, options: Omit<SocketOptions, 'token'> = {}): Promise<ConnectedSocket> {
  const s = await connect(baseUrl, token, options)
  t.teardown(async () => {
    await Promise.race([s.close(), delay(1000)])
    s.ws.terminate()
  })
  return s
}

// ---------------------------------------------------------------------------------------------
// The burst of the process tests (crash, socket-shutdown): several sockets send their planned
// messages without waiting for acks while the spawned server is signalled.

/** Size and pace of the burst: `perSocket` messages from each of `sockets` sockets, `chunk` per socket every `everyMs`. */
export const BURST = { sockets: 3, perSocket: 400, chunk: 10, everyMs: 5, acksBeforeSignal: 100 } as const

/** One message of a burst: which socket sends it, and its clientMsgId (also its ref) and body. */
export interface PlannedMessage { readonly socket: number, readonly clientMsgId: string, readonly body: string }

/** Per socket, the messages it sends in the burst, with clientMsgIds `${prefix}-${socket}-${n}`. */
export function planBurst (prefix: string): PlannedMessage[][] {
  return Array.from({ length: BURST.sockets }, (_, i) =>
    Array.from({ length: BURST.perSocket }, (_, j) => ({ socket: i, clientMsgId: `${prefix}-${i}-${j}`, body: `burst message ${j} from socket ${i}` })))
}

/** The environment of a spawned server on a free loopback port, logging at info, with a frame limit the burst never reaches. */
export function spawnedServerEnv (dataDir: string, secret: string, databaseUrl = ''): Record<string, string> {
  return { HOST: '127.0.0.1', PORT: '0', DATA_DIR: dataDir, DATABASE_URL: databaseUrl, JWT_SECRET: secret, LOG_LEVEL: 'info', ...HIGH_FRAME_RATE }
}

/** A fresh directory (its real path) for a spawned server's DATA_DIR, removed at teardown. */
export function tempDataDir (t: Test, prefix: string): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * Registers `username` and logs it in. A token cannot be signed here instead: it names the
 * database that issued it. Spawned servers hash at the production cost, so keep the users few.
 */
export async function registerAndLogIn (api: ApiClient, username: string): Promise<Account> {
  const password = 'correct-horse-battery'
  const registered = await api.request('POST', '/auth/register', { json: { username, password } })
  if (registered.status !== 201) throw new Error(`register ${username}: ${registered.status} ${registered.text}`)
  const login = await api.request('POST', '/auth/login', { json: { username, password } })
  if (login.status !== 200) throw new Error(`log in ${username}: ${login.status} ${login.text}`)
  return { id: registered.body.id, username, token: login.body.token }
}

/** A socket per account, terminated at teardown, each joined to `room` (asserted). */
export async function connectAndJoin (t: Test, baseUrl: string, accounts: readonly Account[], room: string): Promise<TestSocket[]> {
  const sockets = await Promise.all(accounts.map(async (u) => await connect(baseUrl, u.token)))
  t.teardown(() => { for (const s of sockets) s.ws.terminate() })
  for (const s of sockets) {
    const joined = await s.request({ type: 'join', room })
    t.equal(joined.type, 'joined', `joined ${room}`)
  }
  return sockets
}

/** Every reply (ack or error, by ref = clientMsgId) the sockets get, as it arrives. */
export function trackReplies (sockets: readonly TestSocket[]): Map<string, Frame> {
  const replies = new Map<string, Frame>()
  for (const s of sockets) {
    s.ws.on('message', (data, isBinary) => {
      if (isBinary) return
      const frame = JSON.parse((data as Buffer).toString()) as Frame
      if ((frame.type === 'ack' || frame.type === 'error') && typeof frame.ref === 'string') replies.set(frame.ref, frame)
    })
  }
  return replies
}

/** Sends a planned message; ref = clientMsgId, so its one reply is found by either. */
export function sendPlanned (s: TestSocket, room: string, p: PlannedMessage): void {
  s.send({ type: 'message', room, body: p.body, clientMsgId: p.clientMsgId, ref: p.clientMsgId })
}

export interface RunningBurst {
  /** How many messages have been sent so far, over all sockets. */
  sent (): number
  stop (): void
}

/** Starts sending `plan[i]` from `sockets[i]`, `BURST.chunk` per open socket every `BURST.everyMs`; stopped at teardown at the latest. */
export function startBurst (t: Test, sockets: readonly TestSocket[], room: string, plan: readonly PlannedMessage[][]): RunningBurst {
  const sentCount = plan.map(() => 0)
  const timer = setInterval(() => {
    sockets.forEach((s, i) => {
      for (let k = 0; k < BURST.chunk && sentCount[i]! < plan[i]!.length && s.ws.readyState === WebSocket.OPEN; k++) sendPlanned(s, room, plan[i]![sentCount[i]!++]!)
    })
  }, BURST.everyMs)
  const stop = (): void => clearInterval(timer)
  t.teardown(stop)
  return { sent: () => sentCount.reduce((a, b) => a + b, 0), stop }
}
