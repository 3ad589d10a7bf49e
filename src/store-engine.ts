/**
 * The store the daemon runs on, whichever engine: embedded (the data dir; one daemon) or
 * PostgreSQL (any number of replicas on one database). The use cases see only the interfaces
 * here; src/daemon.ts picks the engine from `store.type`.
 */
import { MemoryUsedTokens, type UsedTokenStore } from './auth/oidc-replay.js';
import { MemorySessionTokens, type SessionTokenStore } from './auth/tokens.js';
import { JitError } from './errors.js';
import type { DaemonConfig } from './policy/config-schema.js';
import type { SharedLocks } from './service/locks.js';
import type { AuditFileOps, OpenedAuditLog } from './store/audit.js';
import { openStore, type SnapshotOptions } from './store/index.js';
import type { SerialAllocator } from './store/serials.js';
import type { StateStore, StoreHealth } from './store/types.js';

export type { StoreHealth };


export interface StoreEngine {
  readonly kind: 'embedded' | 'postgres';
  state: StateStore;
  audit: OpenedAuditLog;
  serials: SerialAllocator;
  sessionTokens: SessionTokenStore;
  usedChallenges: UsedTokenStore;
  usedIdTokens: UsedTokenStore;
  /** The challenge HMAC key when the engine keeps it (PostgreSQL); else the data dir's file. */
  challengeKey?: Buffer;
  /** Request locks across replicas; absent when one daemon owns the store. */
  requestLocks?: SharedLocks;
  health(): Promise<StoreHealth>;
  /** Shares the CA keyring manifest (which key is active/trusted) through the store, when it can. */
  syncKeyring?(dataDir: string, onError: (e: Error) => void): Promise<void>;
  /** Embedded: how the start went (read from a start-up snapshot, records replayed after it). */
  opened?: { fromSnapshotSeq: number; replayedRecords: number };
  /** Embedded: start writing start-up snapshots; call only once the log is trusted (checkpoints checked). */
  startSnapshots?(o: SnapshotOptions): void;
  warnings: string[];
  close(): Promise<void>;
}

export const DATABASE_URL_ENV = 'JITSSHD_DATABASE_URL';

/** The database URL: JITSSHD_DATABASE_URL wins over `store.url` (keeps the password out of YAML). */
export function databaseUrl(config: Pick<DaemonConfig, 'store'>, env: NodeJS.ProcessEnv = process.env): string {
  const url = env[DATABASE_URL_ENV] || (config.store.type === 'postgres' ? config.store.url : undefined);
  if (!url) throw new JitError('invalid_config', `store.url: required for store type postgres (or set ${DATABASE_URL_ENV})`);
  if (!/^postgres(ql)?:\/\//.test(url)) throw new JitError('invalid_config', `${DATABASE_URL_ENV}: must be a postgres:// URL`);
  return url;
}

export interface EngineOptions {
  clock?: () => Date;
  /** Tests only: the embedded audit log's file operations. */
  auditFs?: AuditFileOps;
  onPoolError?: (e: Error) => void;
  /** Embedded: start from the signed start-up snapshot and keep it current (the daemon; not admin commands). */
  snapshots?: boolean;
}

export async function openEngine(config: Pick<DaemonConfig, 'store' | 'dataDir'>, opts: EngineOptions = {}): Promise<StoreEngine> {
  const now = () => (opts.clock?.() ?? new Date()).getTime();
  if (config.store.type === 'postgres') {
    const { openPgStore } = await import('./store/postgres/index.js');
    const pg = await openPgStore(databaseUrl(config), { clock: opts.clock, poolSize: config.store.poolSize, onPoolError: opts.onPoolError });
    return {
      kind: 'postgres',
      state: pg.state,
      audit: pg.audit,
      serials: pg.serials,
      sessionTokens: pg.sessionTokens,
      usedChallenges: pg.usedChallenges,
      usedIdTokens: pg.usedIdTokens,
      challengeKey: pg.challengeKey,
      requestLocks: pg.requestLocks,
      syncKeyring: (dataDir, onError) => pg.syncKeyring(dataDir, onError),
      async health() {
        try {
          await pg.ping();
          return { ok: true };
        } catch (e) {
          return { ok: false, problem: (e as Error).message };
        }
      },
      warnings: [],
      close: () => pg.close(),
    };
  }
  const s = await openStore(config.dataDir, { clock: opts.clock, auditFs: opts.auditFs, snapshots: opts.snapshots });
  return {
    kind: 'embedded',
    state: s.state,
    audit: s.audit,
    serials: s.serials,
    sessionTokens: new MemorySessionTokens(),
    usedChallenges: new MemoryUsedTokens({ now }),
    usedIdTokens: new MemoryUsedTokens({ now }),
    health: async () => ({ ok: true }),
    opened: s.opened,
    startSnapshots: (o) => s.startSnapshots(o),
    warnings: s.warnings,
    close: () => s.close(),
  };
}
