/**
 * The current KRL: every revoked, unexpired certificate by serial under the CA key that signed
 * it, plus explicitly revoked keys. Built once per state version and cached.
 */
import { createHash } from 'node:crypto';
import { encodeKrl, type KrlInput } from '../ca/krl.js';
import { parsePublicKey } from '../ca/keys.js';
import type { RevocationSnapshot } from '../store/types.js';
import { nowSeconds, type ServiceDeps } from './deps.js';

export interface KrlSnapshot {
  version: number;
  bytes: Buffer;
  etag: string;
}

/**
 * Pure: live revocations (the store applies the expiry grace) + a CA lookup → KRL bytes. A
 * retired CA key needs no entries (hosts no longer trust it).
 */
export function buildKrl(snapshot: RevocationSnapshot, caBlob: (fingerprint: string) => Buffer | undefined, nowSec: number): Buffer {
  const bySigner = new Map<string, bigint[]>();
  for (const r of snapshot.certificates) {
    const list = bySigner.get(r.caFingerprint) ?? [];
    list.push(BigInt(r.serial));
    bySigner.set(r.caFingerprint, list);
  }
  const input: KrlInput = {
    version: BigInt(snapshot.krlVersion),
    generatedDate: BigInt(nowSec),
    comment: 'jit-ssh',
    certificates: [...bySigner].flatMap(([fp, serials]) => {
      const caKey = caBlob(fp);
      return caKey ? [{ caKey, serials }] : [];
    }),
    // A key the CA saw is listed whole (any OpenSSH reads that); one known only by its
    // fingerprint by its SHA-256 hash (OpenSSH ≥ 7.9).
    explicitKeys: snapshot.keys.flatMap((k) => (k.publicKey ? [parsePublicKey(k.publicKey, { minRsaBits: 1024 }).blob] : [])),
    sha256Keys: snapshot.keys.flatMap((k) => (k.publicKey ? [] : [Buffer.from(k.fingerprint.slice('SHA256:'.length), 'base64')])),
  };
  return encodeKrl(input);
}

export async function currentKrl(deps: ServiceDeps): Promise<KrlSnapshot> {
  deps.ca.refresh();
  const version = await deps.state.krlVersion();
  const caSet = deps.ca.trusted().map((s) => s.fingerprint).join(',');
  const key = `${version}|${caSet}`;
  const cached = deps.runtime.krl;
  if (cached && cached.key === key) return cached.snap;

  const snapshot = await deps.state.listRevocations(nowSeconds(deps.clock));
  const bytes = buildKrl(snapshot, (fp) => deps.ca.byFingerprint(fp)?.publicKeyBlob, nowSeconds(deps.clock));
  const etag = `"krl-${snapshot.krlVersion}-${createHash('sha256').update(caSet).digest('hex').slice(0, 12)}"`;
  const snap = { version: snapshot.krlVersion, bytes, etag };
  deps.runtime.krl = { key, snap };
  return snap;
}

/** If-None-Match (RFC 9110 §13.1.2): `*`, or a list of tags compared weakly (a `W/` prefix is ignored). */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  const strip = (t: string) => t.trim().replace(/^W\//, '');
  return header.split(',').some((t) => strip(t) === strip(etag));
}
