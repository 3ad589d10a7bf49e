/** What the use cases need, built once by the composition root (daemon.ts) or by tests. */
import type { Logger } from 'pino';
import type { DaemonConfig } from '../policy/config-schema.js';
import type { Policy } from '../policy/schema.js';
import type { AuditLog, StateStore } from '../store/types.js';
import type { SerialAllocator } from '../store/serials.js';
import type { CaKeyring } from '../store/ca-keys.js';
import type { Metrics } from './metrics.js';
import type { Notifier } from './notify.js';
import type { SharedLocks } from './locks.js';

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
  /** Request locks that hold across replicas (PostgreSQL store); absent: this process only. */
  requestLocks?: SharedLocks;
}

export const nowSeconds = (clock: Clock): number => Math.floor(clock.now() / 1000);
export const newRequestId = (random: (n: number) => Buffer): string => 'req_' + random(12).toString('base64url');
