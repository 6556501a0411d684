import type { Migration } from 'kysely'
import * as initial from './2026_11_25_000000_initial.js'

/** Every migration, by name; names sort in the order they run. Imported statically so the build needs no file scanning. */
export const migrations: Record<string, Migration> = {
  '2026_11_25_000000_initial': initial
}
