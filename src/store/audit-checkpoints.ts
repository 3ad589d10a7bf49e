/**
 * Signed checkpoints of the audit log's head, so that cutting records off the end, or rewriting
 * a record and recomputing the chain after it, is detectable (the chain alone proves neither).
 *
 * A checkpoint is one JSON line {seq, hash, time, sig}: `sig` is an SSHSIG (what `ssh-keygen -Y
 * sign` makes; base64 of the blob, no armor) with namespace "jit-ssh-audit-checkpoint" over
 * checkpointMessage(). The key is the daemon's own ed25519 key, never the CA key, in
 * <dataDir>/audit-checkpoint.key (OpenSSH format, 0600; created on first start) with its public
 * half in audit-checkpoint.pub. Checkpoints are appended to <dataDir>/audit-checkpoints.jsonl —
 * outside the log, so truncating the log leaves them — and emitted to the daemon log and
 * optionally syslog, so a copy off the box can catch someone who rewrites both files.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { JitError } from '../errors.js';
import { encodeOpenSshPrivateKey } from '../ca/openssh-key.js';
import { parsePublicKey } from '../ca/keys.js';
import { signSshSig, verifySshSig } from '../ca/sshsig.js';
import { createSigner } from '../ca/signer.js';
import type { Signer } from '../ca/types.js';
import { writeFileAtomicSync } from '../files.js';
import { readLines, type AuditHead } from './audit.js';
import { errorCode, fsyncDir } from './durable-file.js';
import { loadCaKeyFile } from './ca-keys.js';

export const CHECKPOINT_FILES = {
  log: 'audit-checkpoints.jsonl',
  key: 'audit-checkpoint.key',
  pub: 'audit-checkpoint.pub',
} as const;
export const CHECKPOINT_NAMESPACE = 'jit-ssh-audit-checkpoint';

export interface Checkpoint {
  seq: number;
  hash: string;
  /** ISO time the checkpoint was signed. */
  time: string;
  /** base64 SSHSIG blob over checkpointMessage(). */
  sig: string;
}

/** The exact bytes signed; printf this and check `sig` with `ssh-keygen -Y check-novalidate`. */
export function checkpointMessage(c: Pick<Checkpoint, 'seq' | 'hash' | 'time'>): Buffer {
  return Buffer.from(`jit-ssh audit checkpoint v1\nseq ${c.seq}\nhash ${c.hash}\ntime ${c.time}\n`);
}

const HASH = /^[0-9a-f]{64}$/;
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$/;
const B64 = /^[A-Za-z0-9+/]{1,4096}={0,2}$/;

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

/** The checkpoint key of a data dir, created (0600) on first use. Refuses a key others can read. */
export function openCheckpointKey(dataDir: string, now = new Date()): Signer {
  const file = join(dataDir, CHECKPOINT_FILES.key);
  if (existsSync(file)) return loadCaKeyFile(file, 'jit-sshd-audit-checkpoint');
  const key = generateKeyPairSync('ed25519').privateKey;
  const comment = `jit-sshd-audit-checkpoint-${now.toISOString().slice(0, 10)}`;
  writeFileAtomicSync(file, encodeOpenSshPrivateKey(key, comment, randomBytes(4).readUInt32BE(0)), 0o600);
  const signer = createSigner(key, comment);
  writeFileAtomicSync(join(dataDir, CHECKPOINT_FILES.pub), signer.publicKeyLine + '\n', 0o644);
  return signer;
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

const ARMOR_BEGIN = '-----BEGIN SSH SIGNATURE-----';
const ARMOR_END = '-----END SSH SIGNATURE-----';

export async function signCheckpoint(signer: Signer, head: AuditHead, time: Date): Promise<Checkpoint> {
  const body = { seq: head.seq, hash: head.hash, time: time.toISOString() };
  const armored = await signSshSig(checkpointMessage(body), signer, CHECKPOINT_NAMESPACE);
  const sig = armored.replace(ARMOR_BEGIN, '').replace(ARMOR_END, '').replace(/\s+/g, '');
  return { ...body, sig };
}

/** True when sig is a valid SSHSIG by exactly this key over the checkpoint's message. */
export function checkpointSignedBy(c: Checkpoint, publicKeyBlob: Buffer): boolean {
  const armored = `${ARMOR_BEGIN}\n${c.sig.replace(/.{1,70}/g, '$&\n')}${ARMOR_END}\n`;
  try {
    verifySshSig(armored, checkpointMessage(c), { namespace: CHECKPOINT_NAMESPACE, allowedKeys: [publicKeyBlob] });
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// The checkpoint file

/** Checkpoints of a file in order; a torn last line (a crash mid-write) is skipped. */
export async function* readCheckpoints(file: string): AsyncGenerator<{ line: number; checkpoint: Checkpoint | undefined }> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return;
    throw new JitError('unavailable', `cannot read ${file}: ${errorCode(e)}`, { cause: e });
  }
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
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return undefined;
    throw new JitError('unavailable', `cannot read ${file}: ${errorCode(e)}`, { cause: e });
  }
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
  let fh: FileHandle;
  try {
    fh = await open(file, 'r+');
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return;
    throw new JitError('unavailable', `cannot open ${file}: ${errorCode(e)}`, { cause: e });
  }
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
