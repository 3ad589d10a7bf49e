/**
 * The start-up snapshot: the audit replay's live state (replay.ts) after records 1..seq, with
 * where the chain stood (seq, hash, file size, tail() index). A start reads it and then only the
 * records after it, so start-up costs O(live window + tail), not O(history).
 *
 * File <dataDir>/audit-snapshot.json, replaced atomically:
 *   line 1  the payload: {"resume":{seq,hash,bytes,offsets},"time":…,"state":{…}}
 *   line 2  {"v":1,"sha256":"<hex of line 1's bytes>","sig":"<base64 Ed25519>"}
 * (the seal comes last so the payload can be written slice by slice, never whole in memory).
 * `sig` signs snapshotMessage(sha256) with the data dir's audit checkpoint key (never the CA
 * key). The snapshot is a cache of the log, never the record: a missing, unreadable, unsigned or
 * malformed one is ignored with a warning and the whole log is replayed and verified (the slow,
 * always-correct path). A well-signed one the log disagrees with refuses the start (audit.ts).
 */
import { createHash, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { publicKeyObjectFromBlob } from '../ca/signer.js';
import { AUDIT_SNAPSHOT_FILE, type AuditResumePoint } from './audit.js';
import type { CheckpointKey } from './audit-checkpoints.js';
import { errorCode, writeFileAtomic } from '../files.js';
import type { CompactGrant } from './grant-index.js';
import type { ReplayState } from './replay.js';
import type { CertRevocation, KeyRevocation } from './types.js';

export interface SnapshotPayload {
  resume: AuditResumePoint;
  /** ISO time it was taken (for people reading the file). */
  time: string;
  state: ReplayState;
}

export function snapshotMessage(sha256hex: string): Buffer {
  return Buffer.from(`jit-ssh audit snapshot v1\nsha256 ${sha256hex}\n`);
}

export const snapshotPath = (dataDir: string): string => join(dataDir, AUDIT_SNAPSHOT_FILE);

/** Grants serialised per slice before yielding to the event loop: a large snapshot never stalls requests. */
const SLICE = 2000;

/**
 * Writes the snapshot. `payload` must be taken in one synchronous step (replay.exportState and
 * audit.resumePoint together); serialising and hashing then yield between slices.
 */
export async function writeSnapshot(dataDir: string, key: CheckpointKey, payload: SnapshotPayload): Promise<void> {
  await writeFileAtomic(snapshotPath(dataDir), snapshotPieces(key, payload), 0o600);
}

/** The file's text in slices: the payload with the grants spliced in SLICE at a time, then the seal. */
async function* snapshotPieces(key: CheckpointKey, payload: SnapshotPayload): AsyncGenerator<string> {
  const { grants, ...rest } = payload.state;
  const head = JSON.stringify({ resume: payload.resume, time: payload.time, state: { ...rest, grants: [] } });
  const hash = createHash('sha256');
  const emit = (piece: string): string => {
    hash.update(piece);
    return piece;
  };
  yield emit(head.slice(0, -3)); // …"grants":[
  for (let i = 0; i < grants.length; i += SLICE) {
    yield emit((i ? ',' : '') + grants.slice(i, i + SLICE).map((g) => JSON.stringify(g)).join(','));
    await new Promise<void>((r) => setImmediate(r));
  }
  yield emit(']}}');
  const sha256 = hash.digest('hex');
  const sig = cryptoSign(null, snapshotMessage(sha256), key.privateKey).toString('base64');
  yield '\n' + JSON.stringify({ v: 1, sha256, sig }) + '\n';
}

export type SnapshotRead = { payload: SnapshotPayload } | { problem: string } | undefined;

/** The data dir's snapshot if it is there, signed by `key` and well-formed; else why not. */
export async function readSnapshot(dataDir: string, key: CheckpointKey): Promise<SnapshotRead> {
  let buf: Buffer;
  try {
    buf = await readFile(snapshotPath(dataDir));
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return undefined;
    return { problem: `cannot read it: ${errorCode(e)}` };
  }
  const end = buf.length > 0 && buf[buf.length - 1] === 10 ? buf.length - 1 : buf.length;
  const nl = end > 0 ? buf.lastIndexOf(10, end - 1) : -1;
  if (nl < 0) return { problem: 'it is incomplete' };
  let header: { v?: unknown; sha256?: unknown; sig?: unknown };
  try {
    header = JSON.parse(buf.toString('utf8', nl + 1, end)) as typeof header;
  } catch {
    return { problem: 'its seal is not JSON (incomplete?)' };
  }
  if (header?.v !== 1 || typeof header.sha256 !== 'string' || typeof header.sig !== 'string') return { problem: 'unknown format' };
  const body = buf.subarray(0, nl);
  const sha256 = createHash('sha256').update(body).digest('hex');
  if (sha256 !== header.sha256) return { problem: 'its content does not match its hash (damaged)' };
  let signed = false;
  try {
    signed = cryptoVerify(null, snapshotMessage(sha256), publicKeyObjectFromBlob(key.publicKeyBlob), Buffer.from(header.sig, 'base64'));
  } catch {
    signed = false;
  }
  if (!signed) return { problem: `it is not signed by this data dir's audit checkpoint key ${key.fingerprint}` };
  let payload: unknown;
  try {
    payload = JSON.parse(body.toString('utf8'));
  } catch {
    return { problem: 'its payload is not JSON' };
  }
  const problem = payloadProblem(payload);
  return problem ? { problem } : { payload: payload as SnapshotPayload };
}

// ---------------------------------------------------------------------------------------------
// Shape checks: the signature says we wrote it, these say this version can read it.

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNat = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const optStr = (v: unknown): boolean => v === undefined || isStr(v);
const HASH = /^[0-9a-f]{64}$/;
const DIGITS = /^\d{1,20}$/;

function grantOk(g: unknown): g is CompactGrant {
  return (
    isObj(g) &&
    [g.id, g.user, g.target, g.task, g.serial, g.caFingerprint].every(isStr) &&
    [g.keyId, g.account, g.ticket, g.rule, g.keyFingerprint, g.revokedBy].every(optStr) &&
    Array.isArray(g.principals) &&
    g.principals.every(isStr) &&
    [g.createdAt, g.validAfter, g.validBefore].every(isNum) &&
    (g.revokedAt === undefined || isNum(g.revokedAt)) &&
    (g.status === 'issued' || g.status === 'revoked')
  );
}

const certOk = (c: unknown): c is CertRevocation =>
  isObj(c) && isStr(c.serial) && DIGITS.test(c.serial) && isStr(c.caFingerprint) && isNum(c.validBefore) && isNum(c.revokedAt) && isStr(c.by) && optStr(c.reason);

const keyOk = (k: unknown): k is KeyRevocation =>
  isObj(k) && isStr(k.fingerprint) && optStr(k.publicKey) && isNum(k.revokedAt) && isStr(k.by) && optStr(k.reason);

function payloadProblem(p: unknown): string | undefined {
  if (!isObj(p) || !isObj(p.resume) || !isObj(p.state)) return 'its payload lacks resume or state';
  const { seq, hash, bytes, offsets } = p.resume;
  if (!isNat(seq) || !isStr(hash) || !HASH.test(hash) || !isNat(bytes)) return 'its resume point is malformed';
  // One offset per 1024 records (audit.ts STRIDE), the first at byte 0.
  const want = seq === 0 ? 0 : Math.floor((seq - 1) / 1024) + 1;
  if (!Array.isArray(offsets) || offsets.length !== want || !offsets.every(isNat) || (want > 0 && offsets[0] !== 0)) {
    return 'its record index is malformed';
  }
  const s = p.state;
  if (!Array.isArray(s.grants) || !s.grants.every(grantOk)) return 'its grants are malformed';
  if (!Array.isArray(s.certs) || !s.certs.every(certOk)) return 'its certificate revocations are malformed';
  if (!Array.isArray(s.keys) || !s.keys.every(keyOk)) return 'its key revocations are malformed';
  if (!isNat(s.floor) || !isStr(s.maxSerial) || !DIGITS.test(s.maxSerial)) return 'its KRL floor or serial is malformed';
  return undefined;
}
