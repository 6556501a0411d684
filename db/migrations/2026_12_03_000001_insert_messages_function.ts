import { sql, type Kysely } from 'kysely'

// Frozen: a migration that has shipped is never edited; add a new one instead (`create or replace`).

/**
 * The group commit's statement as a PL/pgSQL function. Sent as a query, the statement cost
 * Postgres more to parse and plan (about 1 ms) than to run for a batch of a few messages: a
 * function's statements are planned once per connection and kept, and a generic plan (forced here:
 * the batch size must not make Postgres re-plan) serves every batch after that. A function, not a
 * named prepared statement, because it needs no session state: it works the same behind a
 * transaction-pooling pgbouncer and on the embedded database.
 *
 * What it does is `insertMessages`'s contract (db/repositories/messages.repository.ts):
 * - rooms are locked in id order before their `last_seq` is advanced, so any number of writers on
 *   the database assign gapless, unique seqs and cannot deadlock each other;
 * - a key `(room, user, client_msg_id)` already stored is answered with the stored message;
 *   `created` is still true when the write that stored it is this one (`p_write_id`): a retry after
 *   a lost connection reports what the first attempt committed as created;
 * - unknown rooms give `room_exists = false`, private rooms the sender is not a member of
 *   `allowed = false`;
 * - each author's read position moves up to their highest new seq in the room (never back),
 *   locked in (room, user) order after the rooms, as the read writer does.
 * One row per input position (`ord`, from 1), in input order. Keys must be unique within a call.
 */
export async function up (db: Kysely<any>): Promise<void> {
  await sql`
    create function chat_insert_messages(
      p_room_ids text[], p_user_ids int8[], p_bodies text[], p_keys text[], p_generated bool[], p_write_id int8
    ) returns table (ord int8, room_exists bool, allowed bool, id int8, seq int8, created_at timestamptz, created bool)
    language plpgsql
    set plan_cache_mode = force_generic_plan
    as $fn$
    #variable_conflict use_column
    begin
      return query
      with input as (
        select * from unnest(p_room_ids, p_user_ids, p_bodies, p_keys, p_generated)
          with ordinality as t(room_id, user_id, body, client_msg_id, generated, ord)
      ),
      locked as (
        select r.id, r.private from rooms r where r.id in (select i.room_id from input i) order by r.id for update
      ),
      checked as (
        select i.*, r.id is not null as room_exists,
          r.id is not null and (not r.private or exists (
            select 1 from room_members m where m.room_id = i.room_id and m.user_id = i.user_id)) as allowed
        from input i left join locked r on r.id = i.room_id
      ),
      existing as (
        select c.ord, m.id, m.seq, m.created_at, m.write_id from checked c
        join messages m on m.room_id = c.room_id and m.user_id = c.user_id and m.client_msg_id = c.client_msg_id
        where c.allowed
      ),
      fresh as (
        select c.ord, c.room_id, c.user_id, c.body, c.client_msg_id, c.generated,
          row_number() over (partition by c.room_id order by c.ord) as n
        from checked c
        where c.allowed and not exists (select 1 from existing e where e.ord = c.ord)
      ),
      bumped as (
        update rooms set last_seq = rooms.last_seq + f.count
        from (select fr.room_id, count(*) as count from fresh fr group by fr.room_id) f
        where rooms.id = f.room_id
        returning rooms.id, rooms.last_seq - f.count as base
      ),
      inserted as (
        insert into messages (room_id, seq, user_id, body, client_msg_id, client_msg_id_generated, write_id)
        select f.room_id, b.base + f.n, f.user_id, f.body, f.client_msg_id, f.generated, p_write_id
        from fresh f join bumped b on b.id = f.room_id
        order by f.ord
        returning messages.id, messages.room_id, messages.seq, messages.user_id, messages.created_at
      ),
      authored as (
        insert into read_positions as p (room_id, user_id, read_seq)
        select ins.room_id, ins.user_id, max(ins.seq) from inserted ins
        group by ins.room_id, ins.user_id order by ins.room_id, ins.user_id
        on conflict (room_id, user_id) do update set read_seq = greatest(p.read_seq, excluded.read_seq), updated_at = now()
      )
      select c.ord, c.room_exists, c.allowed,
        coalesce(ins.id, e.id), coalesce(ins.seq, e.seq), coalesce(ins.created_at, e.created_at),
        ins.id is not null or e.write_id is not distinct from p_write_id
      from checked c
      left join existing e on e.ord = c.ord
      left join fresh f on f.ord = c.ord
      left join bumped b on b.id = f.room_id
      left join inserted ins on ins.room_id = f.room_id and ins.seq = b.base + f.n
      order by c.ord;
    end
    $fn$
  `.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`drop function chat_insert_messages(text[], int8[], text[], text[], bool[], int8)`.execute(db)
}
