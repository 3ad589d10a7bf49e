/**
 * The certificate dir (default ~/.ssh/jit, mode 0700):
 *   <target>            private key, OpenSSH format, 0600 (OpenSSH refuses node's PKCS#8 PEM)
 *   <target>-cert.pub   the certificate line (`ssh` also finds it beside `-i <target>`)
 *   <target>.json       what we know about it: request id, serial, account, validBefore, host
 *   .pending/<id>       a pending request's private key (0600) and <id>.json, for --resume
 * Everything is written to a temp file and renamed, so a crash never leaves half a key.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { writeFileAtomicSync } from '../files.js';
import { NAME_RE } from '../policy/names.js';
import { randomBytes, type KeyObject } from 'node:crypto';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { JitError } from '../errors.js';
import { encodeOpenSshPrivateKey } from '../ca/openssh-key.js';

export function defaultCertDir(): string {
  return join(homedir(), '.ssh', 'jit');
}

export interface CertMeta {
  id: string;
  target: string;
  task?: string;
  account?: string;
  user: string;
  server: string;
  serial: string;
  keyId: string;
  principals: string[];
  validAfter: string;
  validBefore: string;
  /** The target's first host, when the server told us. */
  host?: string;
  /** Comment of the agent identity, when it was added to ssh-agent. */
  agentComment?: string;
}

export interface PendingMeta {
  id: string;
  target: string;
  task: string;
  user: string;
  server: string;
  createdAt: string;
  expiresAt?: string;
  account?: string;
}

export interface CertFiles {
  keyFile: string;
  certFile: string;
  metaFile: string;
}

/**
 * `<target>.valid-until`: the certificate's validBefore in epoch seconds, one line, so a shell
 * (`jit-ssh config`'s Match exec helper) can check validity without starting node.
 */
export const VALID_UNTIL = '.valid-until';

/** Target names are policy names; anything else must not become a path. */
const SAFE_NAME = NAME_RE;

function checkName(name: string, what: string): void {
  if (!SAFE_NAME.test(name) || name.endsWith('.json') || name.endsWith('-cert.pub') || name.endsWith(VALID_UNTIL)) {
    throw new JitError('invalid_field', `${what} '${name.slice(0, 80)}' is not a valid name`);
  }
}

export function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // mkdir's mode does not apply to an existing dir; keys must not sit in a readable one.
  try {
    chmodSync(dir, 0o700);
  } catch {
    // not ours to change (e.g. a shared --out dir); the files themselves are 0600
  }
}

/** Atomic write with the final mode from the start (no window where the key is readable). */
export function writePrivateFile(path: string, content: string, mode = 0o600): void {
  ensureDir(dirname(path));
  writeFileAtomicSync(path, content, mode);
}

export function certFiles(dir: string, target: string): CertFiles {
  checkName(target, 'target');
  return { keyFile: join(dir, target), certFile: join(dir, `${target}-cert.pub`), metaFile: join(dir, `${target}.json`) };
}

export function privateKeyText(key: KeyObject, comment: string): string {
  return encodeOpenSshPrivateKey(key, comment, randomBytes(4).readUInt32BE(0));
}

export function writeCert(dir: string, meta: CertMeta, key: KeyObject, certificateLine: string): CertFiles {
  const files = certFiles(dir, meta.target);
  ensureDir(dir);
  writePrivateFile(files.keyFile, privateKeyText(key, `jit-ssh:${meta.target}:${meta.id}`));
  writePrivateFile(files.certFile, certificateLine.trim() + '\n', 0o644);
  writePrivateFile(files.metaFile, JSON.stringify(meta, null, 2) + '\n');
  writePrivateFile(join(dir, meta.target + VALID_UNTIL), `${Math.floor(Date.parse(meta.validBefore) / 1000)}\n`, 0o644);
  return files;
}

export function readMeta(dir: string, target: string): CertMeta | undefined {
  try {
    return JSON.parse(readFileSync(certFiles(dir, target).metaFile, 'utf8')) as CertMeta;
  } catch {
    return undefined;
  }
}

/** Every certificate the dir knows about, valid or not. */
export function listCerts(dir: string): CertMeta[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: CertMeta[] = [];
  for (const n of names) {
    if (!n.endsWith('.json') || n.startsWith('.')) continue;
    const target = n.slice(0, -'.json'.length);
    if (!SAFE_NAME.test(target)) continue;
    const m = readMeta(dir, target);
    if (m && m.target === target) out.push(m);
  }
  return out.sort((a, b) => a.target.localeCompare(b.target));
}

export function removeCert(dir: string, target: string): void {
  const f = certFiles(dir, target);
  for (const p of [f.keyFile, f.certFile, f.metaFile, `${f.keyFile}.pub`, f.keyFile + VALID_UNTIL]) rmSync(p, { force: true });
}

/** Seconds until validBefore (negative once expired). */
export function remainingSeconds(meta: { validBefore: string }, nowMs = Date.now()): number {
  return Math.floor((Date.parse(meta.validBefore) - nowMs) / 1000);
}

/** A cert is usable when its files are all there and it has some life left. */
export function isUsable(dir: string, meta: CertMeta, nowMs = Date.now(), minSeconds = 5): boolean {
  const f = certFiles(dir, meta.target);
  return remainingSeconds(meta, nowMs) >= minSeconds && existsSync(f.keyFile) && existsSync(f.certFile);
}

// ---- pending requests (--no-wait / Ctrl-C, then --resume) ----

function pendingDir(dir: string): string {
  return join(dir, '.pending'); // a dot name: never a target name
}

function pendingFiles(dir: string, id: string): { keyFile: string; metaFile: string } {
  checkName(id, 'request id');
  return { keyFile: join(pendingDir(dir), id), metaFile: join(pendingDir(dir), `${id}.json`) };
}

export function writePending(dir: string, meta: PendingMeta, key: KeyObject): void {
  const f = pendingFiles(dir, meta.id);
  writePrivateFile(f.keyFile, privateKeyText(key, `jit-ssh:pending:${meta.id}`));
  writePrivateFile(f.metaFile, JSON.stringify(meta, null, 2) + '\n');
}

export async function readPending(dir: string, id: string): Promise<{ meta: PendingMeta; key: KeyObject } | undefined> {
  const f = pendingFiles(dir, id);
  if (!existsSync(f.keyFile) || !existsSync(f.metaFile)) return undefined;
  const { decodeOpenSshPrivateKey } = await import('../ca/openssh-key.js');
  const meta = JSON.parse(readFileSync(f.metaFile, 'utf8')) as PendingMeta;
  return { meta, key: decodeOpenSshPrivateKey(readFileSync(f.keyFile, 'utf8')) };
}

export function listPending(dir: string): PendingMeta[] {
  let names: string[];
  try {
    names = readdirSync(pendingDir(dir));
  } catch {
    return [];
  }
  const out: PendingMeta[] = [];
  for (const n of names) {
    if (!n.endsWith('.json')) continue;
    try {
      out.push(JSON.parse(readFileSync(join(pendingDir(dir), n), 'utf8')) as PendingMeta);
    } catch {
      // a torn file is pruned below by its age
    }
  }
  return out;
}

export function removePending(dir: string, id: string): void {
  const f = pendingFiles(dir, id);
  rmSync(f.keyFile, { force: true });
  rmSync(f.metaFile, { force: true });
}

/**
 * Deletes expired certificates and pending keys whose request has expired. Returns the
 * certificates removed, so the caller can drop them from the agent as well.
 */
export function pruneExpired(dir: string, nowMs = Date.now()): CertMeta[] {
  const gone: CertMeta[] = [];
  for (const m of listCerts(dir)) {
    if (remainingSeconds(m, nowMs) <= 0) {
      removeCert(dir, m.target);
      gone.push(m);
    }
  }
  for (const p of listPending(dir)) {
    // A pending request dies at expiresAt; the server can no longer approve it after that.
    if (p.expiresAt && Date.parse(p.expiresAt) < nowMs) {
      try {
        removePending(dir, p.id);
      } catch {
        // an id we would not have written: leave it
      }
    }
  }
  return gone;
}
