/**
 * A lock per request id that holds across replicas: a PostgreSQL advisory lock on its own small
 * pool (so waiting for a lock never takes a connection the locked work needs). Two final
 * approvals on two replicas thus run one after the other, and the second sees the request
 * already issued. If the lock's connection drops, PostgreSQL releases the lock.
 */
import type { RowLocks } from '../types.js';
import { storeError, type Pool } from './pool.js';

/** Namespace of jit-sshd's request locks (the first key of the two-key advisory lock). */
const REQUEST_LOCKS = 0x6a17;

export function pgRequestLocks(pool: Pool): RowLocks {
  return {
    async withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
      let client;
      try {
        client = await pool.connect();
        await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [REQUEST_LOCKS, id]);
      } catch (e) {
        client?.release(true);
        throw storeError(e, 'request lock');
      }
      let broken = false;
      try {
        return await fn();
      } finally {
        try {
          await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [REQUEST_LOCKS, id]);
        } catch {
          broken = true; // connection gone: the server already dropped the lock
        }
        client.release(broken);
      }
    },
  };
}
