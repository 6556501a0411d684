// Fresh Postgres databases per server (created and dropped by the harness), the peers' own schema,
// and the CPU of the Postgres backends serving one database.
import pg from 'pg'
import { processCpuSeconds } from './processes.js'

export function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return url.toString()
}

async function withAdmin<T>(adminUrl: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl })
  await client.connect()
  try {
    return await work(client)
  } finally {
    await client.end()
  }
}

export async function createDatabase(adminUrl: string, name: string): Promise<void> {
  await withAdmin(adminUrl, (c) => c.query(`CREATE DATABASE "${name}"`))
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withAdmin(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`))
}

/**
 * What a careful hand-written chat server would keep: users, rooms, and messages with a per-room
 * seq, the idempotency key unique per author and room, and foreign keys.
 */
const peerSchema = `
CREATE TABLE users (
  id bigserial PRIMARY KEY,
  username text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE rooms (
  id text PRIMARY KEY,
  title text NOT NULL,
  created_by bigint NOT NULL REFERENCES users (id),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE messages (
  id bigserial PRIMARY KEY,
  room text NOT NULL REFERENCES rooms (id),
  seq bigint NOT NULL,
  user_id bigint NOT NULL REFERENCES users (id),
  body text NOT NULL,
  client_msg_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (room, seq)
);
CREATE UNIQUE INDEX messages_idempotency ON messages (room, user_id, client_msg_id)
  WHERE client_msg_id IS NOT NULL;
`

/** Creates the peer schema with one user owning `rooms`; returns the user's id. */
export async function setUpPeerDatabase(url: string, username: string, rooms: string[]): Promise<string> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(peerSchema)
    const user = await client.query<{ id: string }>('INSERT INTO users (username) VALUES ($1) RETURNING id', [username])
    const userId = user.rows[0]!.id
    await client.query(
      'INSERT INTO rooms (id, title, created_by) SELECT r, r, $2 FROM unnest($1::text[]) AS r',
      [rooms, userId]
    )
    return userId
  } finally {
    await client.end()
  }
}

/** The body of history message `i`; the same text is stored in both servers' rooms. */
export function historyBody(i: number): string {
  return `history message ${i} `.padEnd(100, 'x')
}

/** Stores messages 1..count in `room` of the peer database, bodies as historyBody(). */
export async function fillPeerHistory(url: string, room: string, userId: string, count: number): Promise<void> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(
      `INSERT INTO messages (room, seq, user_id, body, client_msg_id)
       SELECT $1, g, $2, rpad('history message ' || g || ' ', 100, 'x'), 'h-' || g
       FROM generate_series(1, $3::int) AS g`,
      [room, userId, count]
    )
    await client.query('ANALYZE')
  } finally {
    await client.end()
  }
}

/** CPU seconds so far of each Postgres backend connected to `database`, by pid. */
export async function backendCpu(adminUrl: string, database: string): Promise<Map<number, number>> {
  const rows = await withAdmin(adminUrl, (c) =>
    c.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [database])
  )
  const cpu = new Map<number, number>()
  for (const { pid } of rows.rows) {
    const seconds = processCpuSeconds(pid)
    if (seconds !== null) cpu.set(pid, seconds)
  }
  return cpu
}

/** CPU the backends spent between two backendCpu() snapshots; a backend born meanwhile counts whole. */
export function backendCpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0
  for (const [pid, seconds] of after) total += seconds - (before.get(pid) ?? 0)
  return total
}
