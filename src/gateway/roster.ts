import type { User } from '../protocol/resources.js'

export interface OnlineUser { readonly userId: string, readonly username: string }

/** Who has a socket joined in each room on this node; several sockets of one user count once. */
export interface Roster {
  add (roomId: string, user: User): void
  remove (roomId: string, user: User): void
  online (roomId: string): OnlineUser[]
}

export function createRoster (): Roster {
  const rooms = new Map<string, Map<string, { username: string, sockets: number }>>()
  return {
    add (roomId, user) {
      let users = rooms.get(roomId)
      if (users === undefined) rooms.set(roomId, users = new Map())
      const entry = users.get(user.id)
      if (entry === undefined) users.set(user.id, { username: user.username, sockets: 1 })
      else entry.sockets++
    },
    remove (roomId, user) {
      const users = rooms.get(roomId)
      const entry = users?.get(user.id)
      if (users === undefined || entry === undefined) return
      if (--entry.sockets > 0) return
      users.delete(user.id)
      if (users.size === 0) rooms.delete(roomId)
    },
    online (roomId) {
      const users = rooms.get(roomId)
      if (users === undefined) return []
      return [...users].map(([userId, { username }]) => ({ userId, username }))
    }
  }
}
