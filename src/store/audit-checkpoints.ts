/**
 * Signed checkpoints of the audit log's head, so that cutting records off the end, or rewriting
 * a record and recomputing the chain after it, is detectable (the chain alone proves neither).
 *
 * A checkpoint is one JSON line {seq, hash, time, sig}: `sig` is the base64 Ed25519 signature
 * of checkpointMessage(), checkable with `openssl pkeyutl -verify -rawin`. The key is the
 * daemon's own ed25519 key, never the CA key: <dataDir>/audit-checkpoint.key (OpenSSH format,
 * 0600, created on first start), public half in audit-checkpoint.pub (and .pub.pem for openssl).
 * Checkpoints are appended to <dataDir>/audit-checkpoints.jsonl — outside the log, so truncating
 * the log leaves them — and emitted to the daemon log and optionally syslog, so a copy off the
 * box can catch someone who rewrites both files (and holds the key).
 */
import { createPublicKey, generateKeyPairSync, randomBytes, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { JitError } from '../errors.js';
import { encodeOpenSshPrivateKey } from '../ca/openssh-key.js';
import { fingerprintOf, parsePublicKey, publicKeyLine } from '../ca/keys.js';
import { publicKeyBlobOf, publicKeyObjectFromBlob } from '../ca/signer.js';
import { readLines, type AuditHead } from './audit.js';
import { errorCode, fsyncDir, writeFileAtomicSync } from '../files.js';
import { readPrivateKeyFile } from './ca-keys.js';

export const CHECKPOINT_FILES = {
  log: 'audit-checkpoints.jsonl',
  key: 'audit-checkpoint.key',
  pub: 'audit-checkpoint.pub',
  /** The same public key as PEM (SPKI), for `openssl pkeyutl -verify`. */
  pem: 'audit-checkpoint.pub.pem',
} as const;

export interface Checkpoint {
  seq: number;
  hash: string;
  /** ISO time the checkpoint was signed. */
  time: string;
  /** base64 Ed25519 signature of checkpointMessage(). */
  sig: string;
}

/** The exact bytes signed (what `openssl pkeyutl -verify -rawin` checks `sig` against). */
export function checkpointMessage(c: Pick<Checkpoint, 'seq' | 'hash' | 'time'>): Buffer {
  return Buffer.from(`jit-ssh audit checkpoint v1\nseq ${c.seq}\nhash ${c.hash}\ntime ${c.time}\n`);
}

const HASH = /^[0-9a-f]{64}$/;
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$/;
const B64 = /^[A-Za-z0-9+/]{86}==$/; // 64 bytes

/**
 * A checkpoint from one line: the daemon's file, or a line of the daemon log / syslog that
 * carries one (the JSON object after "audit checkpoint"). Undefined when it holds none.
 */
export function parseCheckpointLine(line: string): Checkpoint | undefined {
  const at = line.indexOf('{"');
  if (at < 0 || line.length > 16_384) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(line.slice(at));
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object') return undefined;
  // A daemon-log line nests it: {"msg":"audit checkpoint","auditCheckpoint":{…}}.
  const o = ('auditCheckpoint' in v ? (v as { auditCheckpoint: unknown }).auditCheckpoint : v) as Record<string, unknown>;
  if (o === null || typeof o !== 'object') return undefined;
  const { seq, hash, time, sig } = o;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return undefined;
  if (typeof hash !== 'string' || !HASH.test(hash)) return undefined;
  if (typeof time !== 'string' || !ISO_TIME.test(time)) return undefined;
  if (typeof sig !== 'string' || !B64.test(sig)) return undefined;
  return { seq, hash, time, sig };
}

// ---------------------------------------------------------------------------------------------
// The key

/** The daemon's checkpoint key: private half for signing, public half as SSH wire blob / line. */
export interface CheckpointKey {
  privateKey: KeyObject;
  publicKeyBlob: Buffer;
  publicKeyLine: string;
  fingerprint: string;
}

/** The checkpoint key of a data dir, created (0600) on first use. Refuses a key others can read. */
export function openCheckpointKey(dataDir: string, now = new Date()): CheckpointKey {
  const file = join(dataDir, CHECKPOINT_FILES.key);
  let privateKey: KeyObject;
  if (existsSync(file)) {
    privateKey = readPrivateKeyFile(file, 'audit checkpoint key');
    if (privateKey.asymmetricKeyType !== 'ed25519') throw new JitError('invalid_config', `audit checkpoint key ${file} is not ed25519`);
  } else {
    privateKey = generateKeyPairSync('ed25519').privateKey;
    const comment = `jit-sshd-audit-checkpoint-${now.toISOString().slice(0, 10)}`;
    writeFileAtomicSync(file, encodeOpenSshPrivateKey(privateKey, comment, randomBytes(4).readUInt32BE(0)), 0o600);
    writeFileAtomicSync(join(dataDir, CHECKPOINT_FILES.pub), publicKeyLine(publicKeyBlobOf(privateKey), comment) + '\n', 0o644);
    const pem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' });
    writeFileAtomicSync(join(dataDir, CHECKPOINT_FILES.pem), pem, 0o644);
  }
  const publicKeyBlob = publicKeyBlobOf(privateKey);
  return { privateKey, publicKeyBlob, publicKeyLine: publicKeyLine(publicKeyBlob), fingerprint: fingerprintOf(publicKeyBlob) };
}

/** The public key blob from an OpenSSH public key line or a file holding one. */
export function readCheckpointPublicKey(lineOrFile: string): Buffer {
  let line = lineOrFile;
  if (!/^ssh-ed25519 /.test(lineOrFile)) {
    try {
      line = readFileSync(lineOrFile, 'utf8').split('\n')[0];
    } catch (e) {
      throw new JitError('not_found', `cannot read the audit checkpoint public key ${lineOrFile}: ${errorCode(e)}`);
    }
  }
  return parsePublicKey(line).blob;
}

// ---------------------------------------------------------------------------------------------
// Signing and checking

export function signCheckpoint(key: CheckpointKey, head: AuditHead, time: Date): Checkpoint {
  const body = { seq: head.seq, hash: head.hash, time: time.toISOString() };
  return { ...body, sig: cryptoSign(null, checkpointMessage(body), key.privateKey).toString('base64') };
}

/** True when sig is this ed25519 key's signature over the checkpoint's message. */
export function checkpointSignedBy(c: Checkpoint, publicKeyBlob: Buffer): boolean {
  try {
    return cryptoVerify(null, checkpointMessage(c), publicKeyObjectFromBlob(publicKeyBlob), Buffer.from(c.sig, 'base64'));
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// The checkpoint file

/** The file opened with flags, or undefined when it does not exist (yet). */
async function openIfExists(file: string, flags: 'r' | 'r+'): Promise<FileHandle | undefined> {
  try {
    return await open(file, flags);
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return undefined;
    throw new JitError('unavailable', `cannot open ${file}: ${errorCode(e)}`, { cause: e });
  }
}

/** Checkpoints of a file in order; a torn last line (a crash mid-write) is skipped. */
export async function* readCheckpoints(file: string): AsyncGenerator<{ line: number; checkpoint: Checkpoint | undefined }> {
  const fh = await openIfExists(file, 'r');
  if (!fh) return;
  try {
    let n = 0;
    for await (const l of readLines(fh)) {
      n++;
      if (!l.terminated) break;
      if (l.text.trim() === '') continue;
      yield { line: n, checkpoint: l.tooLong ? undefined : parseCheckpointLine(l.text) };
    }
  } finally {
    await fh.close();
  }
}

/** The last checkpoint of the file (read from its tail: checkpoint lines are < 1 KiB). */
export async function lastCheckpoint(file: string): Promise<Checkpoint | undefined> {
  const fh = await openIfExists(file, 'r');
  if (!fh) return undefined;
  try {
    const size = (await fh.stat()).size;
    let last: Checkpoint | undefined;
    // Skipping the first (maybe partial) line of the window unless the window is the whole file.
    const from = Math.max(0, size - 64 * 1024);
    let first = from > 0;
    for await (const l of readLines(fh, from)) {
      if (first) {
        first = false;
        continue;
      }
      if (!l.terminated || l.tooLong) continue;
      last = parseCheckpointLine(l.text) ?? last;
    }
    return last;
  } finally {
    await fh.close();
  }
}

/** Cuts a torn last line (a crash mid-append) so the next checkpoint starts on a line of its own. */
export async function repairCheckpointFile(file: string): Promise<void> {
  const fh = await openIfExists(file, 'r+');
  if (!fh) return;
  try {
    const size = (await fh.stat()).size;
    const window = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(window);
    await fh.read(buf, 0, window, size - window);
    if (window === 0 || buf[window - 1] === 10) return;
    const nl = buf.lastIndexOf(10);
    await fh.truncate(nl < 0 ? size - window : size - window + nl + 1);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/** Appends one checkpoint line durably (fdatasync; the directory too when the file is new). */
export async function appendCheckpoint(file: string, dataDir: string, c: Checkpoint): Promise<void> {
  const isNew = !existsSync(file);
  const fh = await open(file, 'a', 0o600);
  try {
    await fh.write(JSON.stringify(c) + '\n');
    await fh.datasync();
  } finally {
    await fh.close();
  }
  if (isNew) await fsyncDir(dataDir);
}
