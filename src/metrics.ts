/** How a message arrived: a socket's `message` frame, or `POST /rooms/:id/messages`. */
export type AckVia = 'socket' | 'rest'

/**
 * What the core reports as it happens, for the metrics that are distributions. Everything that
 * is a count the parts keep themselves, as plain integers in their `stats()`, and a metrics
 * registry reads them when it is scraped: nothing on the message path allocates or looks up a
 * series. Implementations must be cheap enough to call once per message.
 */
export interface Meter {
  /** A message was acked (`socket`) or answered `201`/`200` (`rest`), `seconds` after its frame or request arrived. */
  acked (via: AckVia, seconds: number): void
  /** A group commit of `size` messages was written. */
  batchWritten (size: number): void
}

/** For a core built without metrics (unit tests, tools). */
export const noMeter: Meter = {
  acked () {},
  batchWritten () {}
}
