/**
 * API.md: text fields refuse NUL and lone surrogates. Postgres text cannot hold NUL (one such
 * message would fail a whole group commit), and half a surrogate pair (possible through JSON
 * escapes) would be stored as U+FFFD and come back changed.
 */

/** What is wrong with one string, or null when it can be stored and returned unchanged. */
export function textFault (text: string): string | null {
  if (text.includes('\u0000')) return 'must not contain NUL (\\u0000)'
  if (!text.isWellFormed()) return 'must be well-formed Unicode (no lone surrogates)'
  return null
}

/**
 * The first string anywhere in a parsed JSON value that `textFault` refuses, as `field: problem`
 * (`field` a dotted path below `where`); null when every string is clean.
 */
export function textProblem (value: unknown, where: string): string | null {
  if (typeof value === 'string') {
    const fault = textFault(value)
    return fault === null ? null : `${where}: ${fault}`
  }
  if (typeof value !== 'object' || value === null) return null
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const problem = textProblem(value[i], `${where}[${i}]`)
      if (problem !== null) return problem
    }
    return null
  }
  for (const [key, item] of Object.entries(value)) {
    // A key is text too: JSON can spell NUL or half a pair there as well.
    const keyFault = textFault(key)
    if (keyFault !== null) return `${where}: a field name ${keyFault}`
    const problem = textProblem(item, where === '' ? key : `${where}.${key}`)
    if (problem !== null) return problem
  }
  return null
}
