/** Stored access requests for store tests: pending, alice, prod-db, created at `nowSec`. */
import type { RequestRecord } from '../../src/store/types.js';

/** Any field of any status. */
export type RecordFields = { [K in keyof RequestRecord]?: unknown };

/** A record in any status: `over` sets the status and its fields (the store checks only what it interprets). */
export function sampleRequest(id: string, nowSec: number, over: RecordFields = {}): RequestRecord {
  const rec = {
    id,
    user: 'alice',
    target: 'prod-db',
    task: 'check-logs',
    status: 'pending',
    createdAt: nowSec * 1000,
    expiresAt: (nowSec + 3600) * 1000,
    draft: { account: 'readonly', principals: ['readonly@prod-db'], ttlSeconds: 900, criticalOptions: {}, extensions: { 'permit-pty': '' } },
    approvals: [],
    publicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop',
    ...over,
  };
  return rec as RequestRecord;
}
