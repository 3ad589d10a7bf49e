/**
 * Rebuilds live auto-issued grants from the audit log after a restart (they are kept in memory
 * only; the audit `issue` record is their durable copy). Reads only fields the issuer writes.
 */
import type { AuditRecord, RequestRecord } from './types.js';

export interface GrantReplay {
  onRecord(r: AuditRecord): void;
  /** Issued grants still valid at nowSec minus graceSec, with revocations applied. */
  grants(nowSec: number, graceSec: number): RequestRecord[];
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

export function grantReplay(): GrantReplay {
  const issued = new Map<string, RequestRecord>();
  const revoked = new Map<string, { at: number; by?: string }>();
  return {
    onRecord(r) {
      if (r.type === 'revoke' && typeof r.id === 'string') {
        revoked.set(r.id, { at: Date.parse(r.time), by: str(r.by) });
        return;
      }
      if (r.type !== 'issue') return;
      const id = str(r.id);
      const certificate = str(r.certificate);
      const serial = str(r.serial);
      const validAfter = num(r.validAfter);
      const validBefore = num(r.validBefore);
      const ca = str(r.ca);
      if (!id || !certificate || !serial || validAfter === undefined || validBefore === undefined || !ca) return;
      const draft = {
        account: str(r.account) ?? '',
        principals: Array.isArray(r.principals) ? (r.principals as string[]) : [],
        ttlSeconds: validBefore - validAfter,
        criticalOptions: (r.criticalOptions as Record<string, string>) ?? {},
        extensions: (r.extensions as Record<string, string>) ?? {},
      };
      issued.set(id, {
        id,
        user: str(r.user) ?? '',
        target: str(r.target) ?? '',
        task: str(r.task) ?? '',
        account: str(r.account),
        ticket: str(r.ticket),
        rule: str(r.rule),
        status: 'issued',
        createdAt: Date.parse(r.time),
        expiresAt: Date.parse(r.time),
        draft,
        approvals: [],
        publicKey: str(r.publicKey) ?? '',
        keyFingerprint: str(r.keyFingerprint),
        sourceAddress: str(r.sourceAddress),
        cert: { serial, keyId: str(r.keyId) ?? '', validAfter, validBefore, caFingerprint: ca, certificate },
      });
    },
    grants(nowSec, graceSec) {
      const out: RequestRecord[] = [];
      for (const g of issued.values()) {
        if (g.cert!.validBefore + graceSec <= nowSec) continue;
        const rv = revoked.get(g.id);
        out.push(rv ? { ...g, status: 'revoked', revokedAt: rv.at, revokedBy: rv.by } : g);
      }
      return out;
    },
  };
}
