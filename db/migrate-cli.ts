// `npm run db:migrate [-- down]`: the same migrations the server runs at start, on demand.
import { loadConfig, readEnvFile } from '../src/config.js'
import { createDatabase } from './create-db.js'
import { migrateDown, migrateToLatest } from './migrate.js'

const direction = process.argv[2] ?? 'latest'
if (direction !== 'latest' && direction !== 'down') {
  process.stderr.write('usage: db:migrate [latest|down]\n')
  process.exit(2)
}
const config = loadConfig({ ...readEnvFile(), ...process.env })
const database = await createDatabase(config.db)
try {
  const names = direction === 'latest' ? await migrateToLatest(database.db) : await migrateDown(database.db)
  process.stdout.write(names.length === 0 ? 'nothing to do\n' : names.map((n) => `${direction === 'latest' ? 'applied' : 'reverted'} ${n}\n`).join(''))
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 1
} finally {
  await database.close()
}
