/**
 * The in-memory form of an auto-issued grant: only what listing, counting, revoking and the
 * KRL need. No certificate text, key line or free text: one user issuing thousands of
 * certificates with 16 KiB key comments costs a few hundred bytes per live certificate, and
 * nothing once it expires (prune drops it). The audit `issue` record is the full copy.
 */
import type { IssuedRequest, RequestRecord, RevokedRequest } from './types.js';

export interface CompactGrant {
  readonly id: string;
  readonly user: string;
  readonly target: string;
  readonly task: string;
  readonly account?: string;
  readonly ticket?: string;
  readonly rule?: string;
  readonly principals: readonly string[];
  /** ms since the epoch */
  readonly createdAt: number;
  readonly serial: string;
  readonly keyId: string;
  readonly caFingerprint: string;
  /** Unix seconds */
  readonly validAfter: number;
  readonly validBefore: number;
  readonly keyFingerprint?: string;
  /** The deciding rule's notification settings (shared with the policy, not a copy per grant). */
  readonly webhook?: unknown;
  readonly status: 'issued' | 'revoked';
  readonly revokedAt?: number;
  readonly revokedBy?: string;
}

export function compactGrant(r: RequestRecord): CompactGrant | undefined {
  if (!r.cert || (r.status !== 'issued' && r.status !== 'revoked')) return undefined;
  return {
    id: r.id,
    user: r.user,
    target: r.target,
    task: r.task,
    account: r.account,
    ticket: r.ticket,
    rule: r.rule,
    principals: [...r.draft.principals],
    createdAt: r.createdAt,
    serial: r.cert.serial,
    keyId: r.cert.keyId,
    caFingerprint: r.cert.caFingerprint,
    validAfter: r.cert.validAfter,
    validBefore: r.cert.validBefore,
    keyFingerprint: r.keyFingerprint,
    webhook: r.webhook,
    status: r.status,
    revokedAt: r.revokedAt,
    revokedBy: r.revokedBy,
  };
}

/** A fresh RequestRecord (the caller may change it) with what the index kept. */
export function expandGrant(g: CompactGrant): IssuedRequest | RevokedRequest {
  const common = {
    id: g.id,
    user: g.user,
    target: g.target,
    task: g.task,
    account: g.account,
    ticket: g.ticket,
    rule: g.rule,
    createdAt: g.createdAt,
    expiresAt: g.createdAt,
    draft: {
      account: g.account ?? '',
      principals: [...g.principals],
      ttlSeconds: g.validBefore - g.validAfter,
      criticalOptions: {},
      extensions: {},
    },
    approvals: [],
    publicKey: '',
    keyFingerprint: g.keyFingerprint,
    webhook: g.webhook,
    cert: { serial: g.serial, keyId: g.keyId, validAfter: g.validAfter, validBefore: g.validBefore, caFingerprint: g.caFingerprint },
  };
  if (g.status === 'issued') return { ...common, status: 'issued' };
  return { ...common, status: 'revoked', revokedAt: g.revokedAt ?? g.createdAt, revokedBy: g.revokedBy ?? '' };
}
