/**
 * Full-jitter exponential backoff (the AWS "full jitter" scheme):
 * `delay = random() * min(max, min * 2 ** attempt)`, so attempt 0 waits 0..min ms and the
 * ceiling doubles per attempt up to `max`. Spreading retries over the whole window keeps a
 * restarted server from being hit by every client at once.
 */
export function backoffDelay (attempt: number, min: number, max: number, random: () => number): number {
  const cap = Math.min(max, min * 2 ** Math.min(attempt, 30))
  return Math.floor(random() * cap)
}
