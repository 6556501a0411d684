import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import type { Log } from '../../src/logger.js'
import { createOutageLog } from '../../src/outage-log.js'

interface Logged { level: 'warn' | 'info' | 'error', obj: unknown, msg: unknown }

function recordingLog (): { log: Log, logged: Logged[] } {
  const logged: Logged[] = []
  const at = (level: Logged['level']) => (obj: unknown, msg?: unknown) => {
    logged.push(typeof obj === 'string' ? { level, obj: undefined, msg: obj } : { level, obj, msg })
  }
  const log = { warn: at('warn'), error: at('error'), info: at('info'), debug: at('info') } as unknown as Log
  return { log, logged }
}

t.test('a warning with the error when failures start, one info line with the length when they end', async (t) => {
  const { log, logged } = recordingLog()
  let clock = 1000
  const outage = createOutageLog({ log, what: 'thing', now: () => clock })
  outage.succeeded()
  t.same(logged, [], 'nothing while it works')
  outage.failed(new Error('one'))
  outage.failed(new Error('two'))
  outage.failed(new Error('three'))
  t.match(logged, [{ level: 'warn', obj: { err: { message: 'one' } }, msg: /^thing unreachable/ }])
  t.equal(logged.length, 1, 'quiet while it keeps failing')
  clock += 2500
  outage.succeeded()
  outage.succeeded()
  t.match(logged.slice(1), [{ level: 'info', obj: { downMs: 2500 }, msg: /^thing reachable again after 2\.5 s/ }])
  t.equal(logged.length, 2, 'once')
  outage.failed(new Error('four'))
  t.match(logged.slice(2), [{ level: 'warn', obj: { err: { message: 'four' } } }], 'a new outage, a new warning')
})

t.test('with a recheck, the end is logged though nothing else calls; one recheck at a time', async (t) => {
  const { log, logged } = recordingLog()
  let up = false
  let runs = 0
  let running = 0
  let overlapped = false
  const outage = createOutageLog({
    log,
    what: 'database',
    recheck: {
      everyMs: 10,
      run: async () => {
        runs++
        overlapped ||= ++running > 1
        await sleep(5)
        running--
        if (!up) throw new Error('still down')
      }
    }
  })
  t.teardown(() => { outage.close() })
  outage.failed(new Error('down'))
  for (let i = 0; i < 20; i++) {
    outage.failed(new Error('again'))
    await sleep(2)
  }
  t.ok(runs >= 2, `it rechecked while down (${runs})`)
  t.notOk(overlapped, 'never two rechecks at once')
  t.equal(logged.length, 1, 'failed rechecks log nothing')
  up = true
  const deadline = Date.now() + 2000
  while (logged.length < 2 && Date.now() < deadline) await sleep(5)
  t.match(logged, [{ level: 'warn' }, { level: 'info', msg: /^database reachable again/ }])
  const after = runs
  await sleep(50)
  t.equal(runs, after, 'no rechecks once it is back')
})

t.test('close: no recheck and no line after it', async (t) => {
  const { log, logged } = recordingLog()
  let runs = 0
  const outage = createOutageLog({ log, what: 'database', recheck: { everyMs: 10, run: async () => { runs++ } } })
  outage.failed(new Error('down'))
  outage.close()
  await sleep(40)
  outage.succeeded()
  outage.failed(new Error('again'))
  t.equal(runs, 0, 'the scheduled recheck was cancelled')
  t.equal(logged.length, 1, 'only the warning from before close')
})
