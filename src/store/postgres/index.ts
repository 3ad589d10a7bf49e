/**
 * The PostgreSQL engine: one pool, the schema migrated on open, and each concern in its module
 * (state, audit, serials, auth, locks). Everything a replica needs from another is in the
 * database; what a replica keeps in memory (a serial block, the audit head it last saw) is
 * either its own or only an optimisation.
 */
import type { OpenedAuditLog } from '../audit.js';
import type { SerialAllocator } from '../serials.js';
import type { RowLocks } from '../types.js';
import { auditLines, openPgAuditLog } from './audit.js';
import { loadChallengeKey, PgSessionTokens, PgUsedOnce } from './auth.js';
import { pgRequestLocks } from './locks.js';
import { migrate } from './migrations.js';
import { createPool, query, redactUrl, type Pool } from './pool.js';
import { pgSerialAllocator, raiseSerialFloor } from './serials.js';
import { PgState, recordGrantsOf } from './state.js';
import { boundedAudit } from '../bounded-audit.js';
import { syncKeyring } from './keyring.js';

export { auditLines, redactUrl };

export interface PgStoreOptions {
  clock?: () => Date;
  poolSize?: number;
  serialBlockSize?: number;
  serialStart?: bigint;
  requestGraceSec?: number;
  krlGraceSec?: number;
  /** Errors of idle connections (the server went away), for the daemon's log. */
  onPoolError?: (e: Error) => void;
}

export interface PgStore {
  pool: Pool;
  state: PgState;
  audit: OpenedAuditLog;
  serials: SerialAllocator;
  sessionTokens: PgSessionTokens;
  usedChallenges: PgUsedOnce;
  usedIdTokens: PgUsedOnce;
  challengeKey: Buffer;
  requestLocks: RowLocks;
  /** Keeps dataDir's keyring manifest in step with the database's (see keyring.ts) until close. */
  syncKeyring(dataDir: string, onError: (e: Error) => void): Promise<void>;
  /** A round trip to the database: what /healthz reports. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export async function openPgStore(url: string, opts: PgStoreOptions = {}): Promise<PgStore> {
  const clock = opts.clock ?? (() => new Date());
  const pool = createPool(url, { max: opts.poolSize, onError: opts.onPoolError });
  // Waiting for a request lock must never hold a connection the locked work needs.
  const lockPool = createPool(url, { max: Math.max(2, Math.ceil((opts.poolSize ?? 10) / 2)), onError: opts.onPoolError });
  try {
    await migrate(pool);
    const now = () => clock().getTime();
    const audit = await openPgAuditLog(pool, {
      clock,
      // A certificate's grant row and the serial floor commit with its `issue` record.
      sideEffects: async (tx, records) => {
        await recordGrantsOf(tx, records);
        await raiseSerialFloor(tx, records);
      },
    });
    let stopKeyringSync = (): void => undefined;
    const store: PgStore = {
      pool,
      state: new PgState(pool, { clock, requestGraceSec: opts.requestGraceSec, krlGraceSec: opts.krlGraceSec }),
      audit: boundedAudit(audit),
      serials: pgSerialAllocator(pool, { blockSize: opts.serialBlockSize, serialStart: opts.serialStart }),
      sessionTokens: new PgSessionTokens(pool),
      usedChallenges: new PgUsedOnce(pool, 'challenge', now),
      usedIdTokens: new PgUsedOnce(pool, 'id_token', now),
      challengeKey: await loadChallengeKey(pool),
      requestLocks: pgRequestLocks(lockPool),
      async syncKeyring(dataDir, onError) {
        stopKeyringSync = await syncKeyring(pool, dataDir, onError);
      },
      async ping() {
        await query(pool, 'health check', 'SELECT 1');
      },
      async close() {
        stopKeyringSync();
        try {
          await audit.close();
        } finally {
          await Promise.allSettled([pool.end(), lockPool.end()]);
        }
      },
    };
    return store;
  } catch (e) {
    await Promise.allSettled([pool.end(), lockPool.end()]);
    throw e;
  }
}
