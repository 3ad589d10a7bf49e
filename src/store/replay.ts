/**
 * What the audit log (the record) says about live state, rebuilt on every start:
 *  - auto-issued grants still valid (kept in memory only, as a compact index; the audit `issue`
 *    record is their durable copy), with revocations applied;
 *  - the KRL: revoked certificates not yet expired, revoked keys not lifted, and a floor for the
 *    KRL version. A lost or restored-from-backup state file must never un-revoke anything.
 * Memory stays bounded by what is live: a record for a certificate already expired is dropped as
 * it is read. Reads only fields the issuer and the revoker write, and checks their types.
 */
import { compactGrantFromIssue, type CompactGrant } from './grant-index.js';
import type { AuditRecord, CertRevocation, KeyRevocation } from './types.js';

export interface AuditReplay {
  onRecord(r: AuditRecord): void;
  /**
   * Hands the live grants over (compact, revocations applied) and stops keeping grants: from
   * here on the state's grant index is the only copy (fed by the audit commits, see index.ts),
   * and exportState() carries no grants.
   */
  takeGrants(): CompactGrant[];
  /** The highest certificate serial any record names (0 when none): serials never restart below it. */
  maxSerial(): bigint;
  /**
   * What was gathered so far, minus what can no longer matter at nowSec (expired past the KRL
   * grace): the start-up snapshot's payload without its grants (the caller adds the state's).
   * Arrays are fresh.
   */
  exportState(nowSec: number): Omit<ReplayState, 'grants'>;
  /** Drops what can no longer matter at nowSec (expired past the KRL grace): memory follows the live window. */
  prune(nowSec: number): void;
  certRevocations(): CertRevocation[];
  keyRevocations(): KeyRevocation[];
  /**
   * The KRL version may not fall below this. The state steps the version once per KRL change to
   * max(version + 1, now in seconds); replaying that rule over the audited changes gives at
   * least the version they reached (a batch or a repeat counts more steps than it made: safe).
   */
  krlFloor(): number;
}

/** A replay's state at some seq, as the start-up snapshot stores it (plain JSON data). */
export interface ReplayState {
  grants: CompactGrant[];
  certs: CertRevocation[];
  keys: KeyRevocation[];
  floor: number;
  /** Decimal string (bigint does not survive JSON). */
  maxSerial: string;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const SERIAL = /^\d{1,20}$/;
/** Serials the allocator's floor accepts (u64 fits in 20 digits, but the floor keeps to 19 as before). */
const SERIAL_19 = /^\d{1,19}$/;

/** Audit record type of lifting a key revocation. */
export const UNREVOKE_KEY = 'unrevoke_key';

/**
 * @param nowSec the present; grants with validBefore ≤ nowSec are dropped.
 * @param krlGraceSec revoked certificates stay in the KRL this long after their validBefore.
 */
export function auditReplay(nowSec: number, krlGraceSec: number, from?: ReplayState): AuditReplay {
  const issued = new Map<string, CompactGrant>(from?.grants.map((g) => [g.id, g]));
  const certs = new Map<string, CertRevocation>(from?.certs.map((c) => [`${c.caFingerprint} ${c.serial}`, c]));
  const keys = new Map<string, KeyRevocation>(from?.keys.map((k) => [k.fingerprint, k]));
  let floor = from?.floor ?? 0;
  let maxSerial = from ? BigInt(from.maxSerial) : 0n;
  const krlCutoff = nowSec - krlGraceSec;
  /** One KRL version step at `atMs`, by the state's rule (see krlFloor). */
  const step = (atMs: number) => {
    if (Number.isFinite(atMs)) floor = Math.max(floor + 1, Math.floor(atMs / 1000));
  };

  let keepGrants = true;

  function onIssue(r: AuditRecord): void {
    if (!keepGrants) return;
    const g = compactGrantFromIssue(r);
    // expired long ago: nothing live, nothing for the KRL
    if (g && g.validBefore > krlCutoff) issued.set(g.id, g);
  }

  function onRevoke(r: AuditRecord): void {
    const at = Date.parse(r.time);
    const by = str(r.by) ?? '';
    const reason = str(r.reason);
    const fingerprint = str(r.keyFingerprint);
    const id = str(r.id);
    if (!id && fingerprint) {
      keys.set(fingerprint, { fingerprint, publicKey: str(r.publicKey), revokedAt: at, by, reason });
      step(at);
      return;
    }
    if (!id) return;
    const g = issued.get(id);
    if (g) issued.set(id, { ...g, status: 'revoked', revokedAt: at, revokedBy: by });
    // Newer revoke records carry the certificate's validBefore; older ones rely on its issue record.
    const serial = str(r.serial);
    const ca = str(r.ca);
    if (serial && ca) step(at);
    const validBefore = num(r.validBefore) ?? g?.validBefore;
    if (!serial || !SERIAL.test(serial) || !ca || validBefore === undefined || validBefore <= krlCutoff) return;
    certs.set(`${ca} ${serial}`, { serial, caFingerprint: ca, validBefore, revokedAt: at, by, reason });
  }

  return {
    onRecord(r) {
      const s = typeof r.serial === 'number' ? String(r.serial) : r.serial;
      if (typeof s === 'string' && SERIAL_19.test(s) && BigInt(s) > maxSerial) maxSerial = BigInt(s);
      if (r.type === 'issue') onIssue(r);
      else if (r.type === 'revoke') onRevoke(r);
      else if (r.type === UNREVOKE_KEY) {
        const fp = str(r.keyFingerprint);
        if (fp) keys.delete(fp);
        step(Date.parse(r.time));
      }
    },
    takeGrants() {
      const out: CompactGrant[] = [];
      for (const g of issued.values()) {
        if (g.validBefore <= nowSec) continue;
        // A snapshot may have caught a grant before the state marked it revoked; its KRL entry says so.
        const rev = g.status === 'issued' ? certs.get(`${g.caFingerprint} ${g.serial}`) : undefined;
        out.push(rev ? { ...g, status: 'revoked', revokedAt: rev.revokedAt, revokedBy: rev.by } : g);
      }
      issued.clear();
      keepGrants = false;
      return out;
    },
    certRevocations: () => [...certs.values()],
    keyRevocations: () => [...keys.values()],
    krlFloor: () => floor,
    maxSerial: () => maxSerial,
    prune(at) {
      const cutoff = at - krlGraceSec;
      for (const [id, g] of issued) if (g.validBefore <= cutoff) issued.delete(id);
      for (const [k, c] of certs) if (c.validBefore <= cutoff) certs.delete(k);
    },
    exportState(at) {
      this.prune(at);
      return { certs: [...certs.values()], keys: [...keys.values()], floor, maxSerial: maxSerial.toString() };
    },
  };
}
