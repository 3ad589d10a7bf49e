/** What the use cases need, built once by the composition root (daemon.ts) or by tests. */
import type { Logger } from 'pino';
import type { DaemonConfig } from '../policy/config-schema.js';
import type { Policy } from '../policy/schema.js';
import type { AuditLog, StateStore } from '../store/types.js';
import type { SerialAllocator } from '../store/serials.js';
import type { CaKeyring } from '../store/ca-keys.js';
import type { Metrics } from './metrics.js';
import type { Notifier } from './notify.js';
import { RequestLocks } from './locks.js';
import { UserRateLimiter } from './user-limits.js';
import type { KrlSnapshot } from './krl.js';

export interface Clock {
  /** ms since the epoch */
  now(): number;
}

export interface ServiceDeps {
  config: DaemonConfig;
  policy(): Policy;
  state: StateStore;
  audit: AuditLog;
  serials: SerialAllocator;
  ca: CaKeyring;
  clock: Clock;
  random(bytes: number): Buffer;
  log: Logger;
  metrics: Metrics;
  notify: Notifier;
  runtime: ServiceRuntime;
}

/**
 * The use cases' in-memory state, one per daemon (never module-level: two daemons in one
 * process, as in tests or replicas, must not share locks, counters or caches).
 */
export interface ServiceRuntime {
  locks: RequestLocks;
  /** requests of each user being decided right now (see issue.ts createRequest) */
  inFlight: Map<string, number>;
  requestRate: UserRateLimiter;
  /** the last KRL built, by store version and CA set */
  krl?: { key: string; snap: KrlSnapshot };
}

export function newServiceRuntime(config: Pick<DaemonConfig, 'limits'>): ServiceRuntime {
  return { locks: new RequestLocks(), inFlight: new Map(), requestRate: new UserRateLimiter(config.limits.requestsPerMinute) };
}

export const nowSeconds = (clock: Clock): number => Math.floor(clock.now() / 1000);
