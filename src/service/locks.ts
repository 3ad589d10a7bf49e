/** Serialises work on one request (two approvals at once must not sign twice). */
const chains = new Map<string, Promise<unknown>>();

/** A lock that also holds across replicas (the PostgreSQL store provides one). */
export interface SharedLocks {
  withLock<T>(id: string, fn: () => Promise<T>): Promise<T>;
}

/**
 * In this process first (one waiter per id reaches the shared lock), then across replicas when
 * `shared` is given.
 */
export function withRequestLock<T>(id: string, fn: () => Promise<T>, shared?: SharedLocks): Promise<T> {
  const work = shared ? () => shared.withLock(id, fn) : fn;
  const prev = chains.get(id) ?? Promise.resolve();
  const run = prev.then(work, work);
  const tail = run.catch(() => undefined);
  chains.set(id, tail);
  void tail.then(() => {
    if (chains.get(id) === tail) chains.delete(id);
  });
  return run;
}
