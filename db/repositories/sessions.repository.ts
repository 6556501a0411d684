import { sql, type Kysely } from 'kysely'
import type { Database } from '../schema.js'
import type { UserIdentity } from './users.repository.js'

/** What a refresh token can be exchanged for: a new one and the user's access token; or why not. */
export type Rotation =
  | { readonly outcome: 'rotated', readonly user: UserIdentity }
  /** The token was spent before: its whole login has now been revoked. */
  | { readonly outcome: 'reused' }
  /** Unknown, expired, or its login revoked (a deleted user's logins are gone with it). */
  | { readonly outcome: 'refused' }

/** Both lifetimes are counted by the database's clock, the one every node shares. */
const expiresIn = (seconds: number) => sql<Date>`now() + make_interval(secs => ${seconds})`

/** The random id this database was given by its migration; access tokens carry it. */
export async function databaseIdentity (db: Kysely<Database>): Promise<string> {
  const row = await db.selectFrom('database_identity').select('id').orderBy('created_at').executeTakeFirstOrThrow()
  return row.id
}

/** Starts a login (a family of refresh tokens) for `userId` with its first token, stored as `tokenHash`. */
export async function createLogin (db: Kysely<Database>, userId: string, tokenHash: string, ttlSeconds: number): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const login = await trx.insertInto('logins').values({ user_id: userId }).returning('id').executeTakeFirstOrThrow()
    await trx.insertInto('refresh_tokens').values({ token_hash: tokenHash, login_id: login.id, expires_at: expiresIn(ttlSeconds) }).execute()
  })
}

/**
 * Spends the token `spentHash` and adds `nextHash` to its login, in one transaction. Of two
 * concurrent exchanges of one token, the second waits for the first's row lock, then finds it
 * spent: that is reuse (RFC 9700 §4.14.2), and the whole login is revoked, the token the first
 * exchange just issued included.
 */
export async function rotateRefreshToken (db: Kysely<Database>, spentHash: string, nextHash: string, ttlSeconds: number): Promise<Rotation> {
  return await db.transaction().execute(async (trx): Promise<Rotation> => {
    const spent = await trx.updateTable('refresh_tokens')
      .set({ spent_at: sql<Date>`now()` })
      .from('logins')
      .innerJoin('users', 'users.id', 'logins.user_id')
      .whereRef('logins.id', '=', 'refresh_tokens.login_id')
      .where('refresh_tokens.token_hash', '=', spentHash)
      .where('refresh_tokens.spent_at', 'is', null)
      .where('refresh_tokens.expires_at', '>', sql<Date>`now()`)
      .where('logins.revoked_at', 'is', null)
      .returning(['refresh_tokens.login_id', 'users.id', 'users.username'])
      .executeTakeFirst()
    if (spent !== undefined) {
      await trx.insertInto('refresh_tokens').values({ token_hash: nextHash, login_id: spent.login_id, expires_at: expiresIn(ttlSeconds) }).execute()
      return { outcome: 'rotated', user: { id: spent.id, username: spent.username } }
    }
    const known = await trx.selectFrom('refresh_tokens').select(['login_id', 'spent_at'])
      .where('token_hash', '=', spentHash).executeTakeFirst()
    if (known?.spent_at == null) return { outcome: 'refused' }
    await revoke(trx, known.login_id)
    return { outcome: 'reused' }
  })
}

/** Revokes the login the token `tokenHash` belongs to (every token of it); nothing when the token is unknown. */
export async function revokeLoginOf (db: Kysely<Database>, tokenHash: string): Promise<void> {
  await db.updateTable('logins').set({ revoked_at: sql<Date>`now()` })
    .where('id', '=', (eb) => eb.selectFrom('refresh_tokens').select('login_id').where('token_hash', '=', tokenHash))
    .where('revoked_at', 'is', null)
    .execute()
}

async function revoke (db: Kysely<Database>, loginId: string): Promise<void> {
  await db.updateTable('logins').set({ revoked_at: sql<Date>`now()` })
    .where('id', '=', loginId).where('revoked_at', 'is', null).execute()
}

/**
 * Deletes up to `limit` expired refresh tokens, then those of their logins that have no token
 * left. A spent token is kept until it expires: until then, its reuse must be recognised.
 */
export async function deleteExpiredTokens (db: Kysely<Database>, limit: number): Promise<void> {
  const gone = await db.deleteFrom('refresh_tokens')
    .where('token_hash', 'in', (eb) => eb.selectFrom('refresh_tokens').select('token_hash')
      .where('expires_at', '<=', sql<Date>`now()`).limit(limit))
    .returning('login_id')
    .execute()
  if (gone.length === 0) return
  await db.deleteFrom('logins')
    .where('id', 'in', [...new Set(gone.map((row) => row.login_id))])
    .where((eb) => eb.not(eb.exists(eb.selectFrom('refresh_tokens').select('token_hash').whereRef('refresh_tokens.login_id', '=', 'logins.id'))))
    .execute()
}
