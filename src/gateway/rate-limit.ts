import type { RateState } from '../fanout/socket-state.js'

export interface FrameLimitOptions {
  /** Tokens added per second (sustained frames/s). */
  readonly rate: number
  /** Bucket size: frames that may arrive at once. */
  readonly burst: number
  /** Refused frames in a row after which the socket is closed. */
  readonly maxStrikes: number
}

/** `limited`: refuse this frame with `rate_limited`; `close`: the client kept going, close with 1008. */
export type Verdict = 'ok' | 'limited' | 'close'

export interface FrameLimit {
  initial (now: number): RateState
  /** Takes `cost` tokens for one frame (invalid frames cost more, so garbage runs out first; never more than the burst). */
  take (state: RateState, cost: number, now: number): Verdict
}

export function createFrameLimit (options: FrameLimitOptions): FrameLimit {
  const perMs = options.rate / 1000
  return {
    initial: (now) => ({ tokens: options.burst, refilledAt: now, strikes: 0 }),
    take (state, cost, now) {
      const price = Math.min(cost, options.burst)
      state.tokens = Math.min(options.burst, state.tokens + (now - state.refilledAt) * perMs)
      state.refilledAt = now
      if (state.tokens >= price) {
        state.tokens -= price
        state.strikes = 0
        return 'ok'
      }
      state.strikes++
      return state.strikes > options.maxStrikes ? 'close' : 'limited'
    }
  }
}
