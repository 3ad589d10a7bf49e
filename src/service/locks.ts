/** A lock that also holds across replicas (the PostgreSQL store provides one). */
export interface SharedLocks {
  withLock<T>(id: string, fn: () => Promise<T>): Promise<T>;
}

/**
 * Serialises work on one request (two approvals at once must not sign twice). One per daemon,
 * built by the composition root: two daemons in one process never share it. In this process
 * first (one waiter per id reaches the shared lock), then across replicas when `shared` is given.
 */
export class RequestLocks {
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(private readonly shared?: SharedLocks) {}

  run<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const shared = this.shared;
    const work = shared ? () => shared.withLock(id, fn) : fn;
    const prev = this.chains.get(id) ?? Promise.resolve();
    const run = prev.then(work, work);
    const tail = run.catch(() => undefined);
    this.chains.set(id, tail);
    void tail.then(() => {
      if (this.chains.get(id) === tail) this.chains.delete(id);
    });
    return run;
  }
}
