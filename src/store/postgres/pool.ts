/**
 * The connection pool and the one rule for database errors: anything that is not a JitError
 * means the database could not do it (down, restarting, network), so the caller answers 503
 * `store_unavailable` and nothing is handed out. pg reconnects by itself on the next checkout.
 */
import pg from 'pg';
import { isJitError, JitError } from '../../errors.js';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

export interface PoolOptions {
  /** Connections per replica (default 10). */
  max?: number;
  /** Give up on a connection attempt after this long (default 2000 ms), so requests fail fast. */
  connectTimeoutMs?: number;
  /** Called for errors of idle connections (the database went away): log, never crash. */
  onError?: (e: Error) => void;
}

/** `postgres://user:pass@host/db` with the password hidden, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://…';
  }
}

export function createPool(url: string, opts: PoolOptions = {}): Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 2000,
    idleTimeoutMillis: 30_000,
    // A statement stuck behind a dead server must not hold a request forever.
    query_timeout: 15_000,
    application_name: 'jit-sshd',
  });
  const report = opts.onError ?? (() => undefined);
  // Without these listeners a server restart emits 'error' on idle or checked-out clients and
  // node exits on the unhandled event.
  pool.on('error', report);
  pool.on('connect', (c) => c.on('error', report));
  return pool;
}

/** The JitError to throw for a failed database call. */
export function storeError(e: unknown, what: string): JitError {
  if (isJitError(e)) return e;
  // The driver's message (host, port, SQL detail) goes to the log via `cause`, never to clients.
  return new JitError('store_unavailable', `the database is unavailable (${what}); try again shortly`, { cause: e, retryAfterSeconds: 2 });
}

/**
 * Runs fn in one transaction; rolls back on error. Errors of the database (its statements,
 * BEGIN/COMMIT, the connection) become store_unavailable; whatever fn throws itself (a refused
 * mutation, not_found) passes through unchanged.
 */
export async function inTransaction<T>(pool: Pool, what: string, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (e) {
    throw storeError(e, what);
  }
  let broken = false;
  const c = client;
  const tx = {
    query: (...args: Parameters<PoolClient['query']>) => (c.query as (...a: unknown[]) => Promise<unknown>)(...args).catch((e: unknown) => Promise.reject(storeError(e, what))),
  } as unknown as PoolClient;
  try {
    await tx.query('BEGIN');
    const out = await fn(tx);
    await tx.query('COMMIT');
    return out;
  } catch (e) {
    try {
      await client.query('ROLLBACK');
    } catch {
      broken = true; // the connection is gone: do not return it to the pool
    }
    throw e;
  } finally {
    client.release(broken);
  }
}

/** One statement outside a transaction; `{name, text}` makes it a prepared statement per connection (hot paths). */
export async function query<R extends pg.QueryResultRow>(
  pool: Pool,
  what: string,
  text: string | { name: string; text: string },
  values: unknown[] = [],
): Promise<pg.QueryResult<R>> {
  try {
    return await pool.query<R>(typeof text === 'string' ? { text, values } : { ...text, values });
  } catch (e) {
    throw storeError(e, what);
  }
}
