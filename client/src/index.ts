export { ChatClient } from './client.js'
export { Room } from './room.js'
export { backoffDelay } from './backoff.js'
export type * from './types.js'
