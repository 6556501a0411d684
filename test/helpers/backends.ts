import { randomBytes } from 'node:crypto'
import pg from 'pg'

/** A database the server under test can run on. */
export interface Backend {
  readonly name: 'embedded' | 'postgres'
  /** Creates a fresh, empty database for one test file; returns its URL (null: embedded) and a cleanup. */
  provision (): Promise<{ url: string | null, drop: () => Promise<void> }>
}

const embedded: Backend = {
  name: 'embedded',
  async provision () {
    return { url: null, drop: async () => {} }
  }
}

function postgres (adminUrl: string): Backend {
  return {
    name: 'postgres',
    async provision () {
      const name = `chat_test_${process.pid}_${randomBytes(4).toString('hex')}`
      const admin = new pg.Client({ connectionString: adminUrl })
      await admin.connect()
      try {
        await admin.query(`create database ${name}`)
      } finally {
        await admin.end()
      }
      const url = new URL(adminUrl)
      url.pathname = `/${name}`
      return {
        url: url.toString(),
        async drop () {
          const client = new pg.Client({ connectionString: adminUrl })
          await client.connect()
          try {
            await client.query(`drop database if exists ${name} with (force)`)
          } finally {
            await client.end()
          }
        }
      }
    }
  }
}

/**
 * The embedded database always; the machine's Postgres too when TEST_DATABASE_URL is set.
 * Without it the Postgres variant is reported as skipped, with the reason.
 */
export function backends (): { run: Backend[], skipped: string | null } {
  const url = process.env.TEST_DATABASE_URL
  if (url === undefined || url === '') {
    return { run: [embedded], skipped: 'postgres: TEST_DATABASE_URL is not set' }
  }
  return { run: [embedded, postgres(url)], skipped: null }
}
