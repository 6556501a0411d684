import { readFileSync } from 'node:fs'

/** Clock ticks per second for /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100

export interface ProcessSample {
  /** User + system. */
  readonly cpuSeconds: number
  /** In the kernel: on loopback that includes most of the TCP path of what the process sends. */
  readonly systemSeconds: number
  readonly rssBytes: number
}

/** CPU time (user + system) and RSS of a process, read from /proc; independent of the load generator. */
export function sampleProcess (pid: number): ProcessSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields overall.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  const rssPages = Number(fields[21])
  return { cpuSeconds: (utime + stime) / TICKS_PER_SECOND, systemSeconds: stime / TICKS_PER_SECOND, rssBytes: rssPages * 4096 }
}
