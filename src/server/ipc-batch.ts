/**
 * Messages to one process sent in the same event-loop turn leave as one IPC write (an array):
 * an audit batch settles dozens of requests at once, and one pipe write for all their answers
 * costs a fraction of one write each, on both sides.
 */
export interface Batcher<T> {
  send(m: T): void;
  /** sends what is queued now (before a message that must not overtake it) */
  flush(): void;
}

export function batcher<T>(write: (batch: T[]) => void): Batcher<T> {
  let queue: T[] = [];
  let scheduled = false;
  const flush = (): void => {
    if (queue.length === 0) return;
    const batch = queue;
    queue = [];
    write(batch);
  };
  return {
    send(m) {
      queue.push(m);
      if (scheduled) return;
      scheduled = true;
      // After this turn's I/O callbacks and promise chains: every answer of a batch is queued.
      setImmediate(() => {
        scheduled = false;
        flush();
      });
    },
    flush,
  };
}
