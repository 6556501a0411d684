import { sql, type Kysely } from 'kysely'

// Frozen: a migration that has shipped is never edited; add a new one instead (`create or replace`).

/**
 * A history page for a reader, as a PL/pgSQL function, for the reason `chat_insert_messages` is
 * one: sent as a query, the statement cost Postgres about 1 ms to parse and plan, three times the
 * cost of a plain keyset query; a function's statements are planned once per connection and kept.
 *
 * What it does is `historyPageJson`'s contract (db/repositories/messages.repository.ts): whether
 * `p_user` exists, whether the room does, whether the user may read it (public, or a member of a
 * private room); only then `page`, the REST response `{messages, hasMore}` as JSON text with
 * `toMessage`'s fields, order and formats. Ascending seq; with `p_forward` the `p_limit` messages
 * right after `p_after`, otherwise the newest `p_limit` below `p_before`; `hasMore` says whether
 * the range holds more in the paging direction.
 */
export async function up (db: Kysely<any>): Promise<void> {
  await sql`
    create function chat_history_page(p_user int8, p_room text, p_after int8, p_before int8, p_limit int8, p_forward bool,
      out user_exists bool, out room_exists bool, out readable bool, out page text)
    language plpgsql stable
    set plan_cache_mode = force_generic_plan
    as $fn$
    declare
      room_private bool;
    begin
      user_exists := exists (select 1 from users where id = p_user);
      select r.private into room_private from rooms r where r.id = p_room;
      room_exists := found;
      readable := room_exists and (not room_private or exists (select 1 from room_members where room_id = p_room and user_id = p_user));
      if not (user_exists and readable) then
        return;
      end if;
      -- Two statements, one per direction: each has its own index scan, forwards or backwards.
      -- One row more than the page says whether the range holds another.
      if p_forward then
        select '{"messages":[' || coalesce(string_agg(row_to_json(p.msg)::text, ',' order by (p.msg).seq) filter (where p.n <= p_limit), '')
            || '],"hasMore":' || (count(*) > p_limit)::text || '}'
          into page
          from (
            select msg, row_number() over (order by msg.seq) as n
            from (
              select m.id::text as id, m.room_id as room, m.seq, m.user_id::text as "userId", u.username, m.body,
                case when m.client_msg_id_generated then null else m.client_msg_id end as "clientMsgId",
                to_char(m.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as "createdAt"
              from messages m join users u on u.id = m.user_id
              where m.room_id = p_room and m.seq > p_after and m.seq < p_before
              order by m.seq
              limit p_limit + 1
            ) msg
          ) p;
      else
        select '{"messages":[' || coalesce(string_agg(row_to_json(p.msg)::text, ',' order by (p.msg).seq) filter (where p.n <= p_limit), '')
            || '],"hasMore":' || (count(*) > p_limit)::text || '}'
          into page
          from (
            select msg, row_number() over (order by msg.seq desc) as n
            from (
              select m.id::text as id, m.room_id as room, m.seq, m.user_id::text as "userId", u.username, m.body,
                case when m.client_msg_id_generated then null else m.client_msg_id end as "clientMsgId",
                to_char(m.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as "createdAt"
              from messages m join users u on u.id = m.user_id
              where m.room_id = p_room and m.seq > p_after and m.seq < p_before
              order by m.seq desc
              limit p_limit + 1
            ) msg
          ) p;
      end if;
    end
    $fn$
  `.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`drop function chat_history_page(int8, text, int8, int8, int8, bool)`.execute(db)
}
