/**
 * Serialises work on one request (two approvals at once must not sign twice). One per daemon,
 * built by the composition root: two daemons in one process never share it.
 */
export class RequestLocks {
  private readonly chains = new Map<string, Promise<unknown>>();

  run<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(id) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.chains.set(id, tail);
    void tail.then(() => {
      if (this.chains.get(id) === tail) this.chains.delete(id);
    });
    return run;
  }
}
