import type { Migration } from 'kysely'
import * as initial from './2026_11_25_000000_initial.js'
import * as messageWriteIds from './2026_11_25_000001_message_write_ids.js'
import * as readPositionsAndSessions from './2026_12_03_000000_read_positions_and_sessions.js'
import * as insertMessagesFunction from './2026_12_03_000001_insert_messages_function.js'
import * as historyPageFunction from './2026_12_03_000002_history_page_function.js'

/** Every migration, by name; names sort in the order they run. Imported statically so the build needs no file scanning. */
export const migrations: Record<string, Migration> = {
  '2026_11_25_000000_initial': initial,
  '2026_11_25_000001_message_write_ids': messageWriteIds,
  '2026_12_03_000000_read_positions_and_sessions': readPositionsAndSessions,
  '2026_12_03_000001_insert_messages_function': insertMessagesFunction,
  '2026_12_03_000002_history_page_function': historyPageFunction
}
