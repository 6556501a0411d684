// The Prometheus text format (0.0.4), read back for tests: enough of it to check what /metrics
// says. Imports nothing from src/ or plugins/, so the black-box tests can use it too.

/** One line of a scrape: `name{labels} value`. */
export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export interface Scrape {
  readonly samples: readonly Sample[]
  /** Each family's `# TYPE` (counter, gauge, histogram, …), by family name. */
  readonly types: ReadonlyMap<string, string>
  /**
   * The value of the one sample named `name` whose labels include `labels`; undefined if there
   * is none. Throws if several match: the test asked an ambiguous question.
   */
  value (name: string, labels?: Readonly<Record<string, string>>): number | undefined
  /** The sum over every sample named `name` whose labels include `labels` (0 if none). */
  sum (name: string, labels?: Readonly<Record<string, string>>): number
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/y

function parseValue (text: string): number {
  if (text === '+Inf') return Infinity
  if (text === '-Inf') return -Infinity
  const value = Number(text)
  // Prometheus reads NaN in any case; prom-client writes `Nan`.
  if (Number.isNaN(value) && text.toLowerCase() !== 'nan') throw new Error(`not a sample value: ${text}`)
  return value
}

function parseLabels (text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {}
  LABEL.lastIndex = 0
  while (LABEL.lastIndex < text.length) {
    const at = LABEL.lastIndex
    const match = LABEL.exec(text)
    if (match === null) throw new Error(`bad labels at ${at} in: ${line}`)
    labels[match[1] ?? ''] = (match[2] ?? '').replace(/\\(.)/g, (_, c: string) => c === 'n' ? '\n' : c)
  }
  return labels
}

/** Parses a scrape; throws on a line it does not understand, so a malformed exposition fails the test. */
export function parsePrometheus (text: string): Scrape {
  const samples: Sample[] = []
  const types = new Map<string, string>()
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    if (line.startsWith('#')) {
      const type = /^# TYPE (\S+) (\S+)$/.exec(line)
      if (type !== null) types.set(type[1] ?? '', type[2] ?? '')
      else if (!line.startsWith('# HELP ')) throw new Error(`unexpected comment: ${line}`)
      continue
    }
    const match = SAMPLE.exec(line)
    if (match === null) throw new Error(`not a sample: ${line}`)
    samples.push({ name: match[1] ?? '', labels: parseLabels(match[2] ?? '', line), value: parseValue(match[3] ?? '') })
  }
  const matching = (name: string, labels: Readonly<Record<string, string>>): Sample[] =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  return {
    samples,
    types,
    value (name, labels = {}) {
      const found = matching(name, labels)
      if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`)
      return found[0]?.value
    },
    sum: (name, labels = {}) => matching(name, labels).reduce((total, s) => total + s.value, 0)
  }
}
