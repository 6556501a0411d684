type Listener<T> = (event: T) => void

/** A tiny typed event emitter. A throwing listener neither stops the others nor the client: its error is rethrown on its own. */
export class Emitter<Events extends object> {
  private listeners = new Map<keyof Events, Set<Listener<never>>>()

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof Events> (type: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(type)
    if (set === undefined) this.listeners.set(type, set = new Set())
    set.add(listener)
    return () => { this.off(type, listener) }
  }

  off<K extends keyof Events> (type: K, listener: Listener<Events[K]>): void {
    const set = this.listeners.get(type)
    if (set === undefined) return
    set.delete(listener)
    if (set.size === 0) this.listeners.delete(type)
  }

  protected emit<K extends keyof Events> (type: K, event: Events[K]): void {
    const set = this.listeners.get(type)
    if (set === undefined) return
    for (const listener of [...set]) {
      try {
        (listener as Listener<Events[K]>)(event)
      } catch (err) {
        // Like a DOM event listener's error: reported as an unhandled rejection (left unhandled on
        // purpose), never left to break the frame being handled.
        void Promise.reject(err)
      }
    }
  }

  protected removeAllListeners (): void {
    this.listeners.clear()
  }
}
