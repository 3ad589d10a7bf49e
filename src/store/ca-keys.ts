/**
 * The CA keys on disk: one OpenSSH private key file per key (0600, readable by `ssh-keygen` in an
 * emergency) and a small manifest saying which key signs (active), which hosts must still trust
 * (trusted), and which are retired. Admin commands change the manifest atomically; the daemon
 * reloads it when it changes, so `jit-sshd ca rotate` works while the daemon runs.
 */
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { writeFileAtomicSync } from '../files.js';
import { join } from 'node:path';
import { JitError } from '../errors.js';
import { createSigner } from '../ca/signer.js';
import { decodeOpenSshPrivateKey, encodeOpenSshPrivateKey } from '../ca/openssh-key.js';
import type { Signer } from '../ca/types.js';

export type CaKeyType = 'ed25519' | 'ecdsa-p256' | 'ecdsa-p384' | 'ecdsa-p521' | 'rsa';
export type CaKeyStatus = 'active' | 'trusted' | 'retired';

export interface CaKeyEntry {
  file: string;
  fingerprint: string;
  publicKey: string;
  status: CaKeyStatus;
  createdAt: string;
  retiredAt?: string;
}

interface Manifest {
  keys: CaKeyEntry[];
}

export interface CaKeyring {
  /** The key that signs new certificates. */
  active(): Signer;
  /** Active and still-trusted keys (what hosts put in TrustedUserCAKeys). */
  trusted(): Signer[];
  byFingerprint(fp: string): Signer | undefined;
  /** TrustedUserCAKeys lines. */
  publicLines(): string[];
  entries(): CaKeyEntry[];
  /** Re-reads the manifest if it changed on disk (cheap stat); returns true if it did. */
  refresh(): boolean;
}

/**
 * Which CA: 'user' signs engineers' certificates, 'host' signs host certificates. The host CA is
 * the same kind of keyring in its own directory (`<dataDir>/host/ca`), so every function here
 * works on either by taking keyringRoot(dataDir, kind) as its data dir.
 */
export type CaKind = 'user' | 'host';
export const keyringRoot = (dataDir: string, kind: CaKind): string => (kind === 'host' ? join(dataDir, 'host') : dataDir);

const caDir = (dataDir: string) => join(dataDir, 'ca');
const manifestPath = (dataDir: string) => join(caDir(dataDir), 'keyring.json');

function generateKey(type: CaKeyType): KeyObject {
  switch (type) {
    case 'ed25519':
      return generateKeyPairSync('ed25519').privateKey;
    case 'ecdsa-p256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    case 'ecdsa-p384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    case 'ecdsa-p521':
      return generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey;
    case 'rsa':
      return generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey;
  }
}

function readManifest(dataDir: string): Manifest {
  const p = manifestPath(dataDir);
  if (!existsSync(p)) return { keys: [] };
  try {
    const m = JSON.parse(readFileSync(p, 'utf8')) as Manifest;
    if (!Array.isArray(m.keys)) throw new Error('keys is not a list');
    return m;
  } catch (e) {
    throw new JitError('invalid_config', `CA keyring ${p} is unreadable: ${(e as Error).message}`);
  }
}

function writeManifest(dataDir: string, m: Manifest): void {
  writeFileAtomicSync(manifestPath(dataDir), JSON.stringify(m, null, 2) + '\n', 0o600);
}

/** Reads an OpenSSH private key file, refusing one that group or others could read. */
export function readPrivateKeyFile(path: string, what = 'CA key'): KeyObject {
  const st = statSync(path);
  if ((st.mode & 0o077) !== 0) {
    throw new JitError(
      'invalid_config',
      `${what} ${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${path}`,
    );
  }
  return decodeOpenSshPrivateKey(readFileSync(path, 'utf8'));
}

/** Loads a CA private key file, refusing keys that group or others could read. */
export function loadCaKeyFile(path: string, comment?: string): Signer {
  return createSigner(readPrivateKeyFile(path), comment);
}

function createKeyFile(dataDir: string, type: CaKeyType, now: Date): CaKeyEntry {
  mkdirSync(caDir(dataDir), { recursive: true, mode: 0o700 });
  const key = generateKey(type);
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  const file = `ca-${stamp}-${randomBytes(3).toString('hex')}.key`;
  const text = encodeOpenSshPrivateKey(key, `jit-ssh-ca-${stamp}`, randomBytes(4).readUInt32BE(0));
  writeFileAtomicSync(join(caDir(dataDir), file), text, 0o600);
  const signer = createSigner(key, `jit-ssh-ca-${stamp}`);
  return { file, fingerprint: signer.fingerprint, publicKey: signer.publicKeyLine, status: 'active', createdAt: now.toISOString() };
}

/** Creates the data dir and a first CA key if there is none. Returns the active entry and whether it was created. */
export function initKeyring(dataDir: string, type: CaKeyType, now = new Date()): { entry: CaKeyEntry; created: boolean } {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const m = readManifest(dataDir);
  const active = m.keys.find((k) => k.status === 'active');
  if (active) return { entry: active, created: false };
  const entry = createKeyFile(dataDir, type, now);
  m.keys.push(entry);
  writeManifest(dataDir, m);
  return { entry, created: true };
}

/** New signing key; the old active key stays trusted until retired. */
export function rotateKeyring(dataDir: string, type: CaKeyType, now = new Date()): CaKeyEntry {
  const m = readManifest(dataDir);
  if (!m.keys.some((k) => k.status === 'active')) throw new JitError('conflict', 'no CA key yet: run jit-sshd init');
  const entry = createKeyFile(dataDir, type, now);
  for (const k of m.keys) if (k.status === 'active') k.status = 'trusted';
  m.keys.push(entry);
  writeManifest(dataDir, m);
  return entry;
}

/**
 * Stops trusting a key. `lastValidBefore` (seconds) is the latest expiry of certificates it
 * signed; retiring is refused while any is still valid unless forced.
 */
export function retireKey(
  dataDir: string,
  fingerprint: string,
  opts: { force?: boolean; lastValidBefore?: number; now?: Date } = {},
): CaKeyEntry {
  const now = opts.now ?? new Date();
  const m = readManifest(dataDir);
  const entry = m.keys.find((k) => k.fingerprint === fingerprint && k.status !== 'retired');
  if (!entry) throw new JitError('not_found', `no trusted CA key with fingerprint ${fingerprint}`);
  if (entry.status === 'active') throw new JitError('conflict', 'the active CA key cannot be retired: rotate first');
  if (!opts.force && opts.lastValidBefore !== undefined && opts.lastValidBefore > now.getTime() / 1000) {
    throw new JitError(
      'conflict',
      `certificates signed by ${fingerprint} are valid until ${new Date(opts.lastValidBefore * 1000).toISOString()}; retire after that or use --force`,
    );
  }
  entry.status = 'retired';
  entry.retiredAt = now.toISOString();
  writeManifest(dataDir, m);
  return entry;
}

export function readKeyringEntries(dataDir: string): CaKeyEntry[] {
  return readManifest(dataDir).keys;
}

/** Opens the keyring for signing; loads every non-retired key. */
export function openKeyring(dataDir: string, onChange?: (entries: CaKeyEntry[]) => void): CaKeyring {
  let signers = new Map<string, Signer>();
  let entries: CaKeyEntry[] = [];
  let activeFp = '';
  let mtimeMs = -1;

  const load = (): void => {
    const m = readManifest(dataDir);
    const next = new Map<string, Signer>();
    let active = '';
    for (const e of m.keys) {
      if (e.status === 'retired') continue;
      const signer = signers.get(e.fingerprint) ?? loadCaKeyFile(join(caDir(dataDir), e.file), e.publicKey.split(' ')[2]);
      if (signer.fingerprint !== e.fingerprint) {
        throw new JitError('invalid_config', `CA key file ${e.file} does not match its fingerprint in the keyring`);
      }
      next.set(e.fingerprint, signer);
      if (e.status === 'active') active = e.fingerprint;
    }
    if (!active) throw new JitError('invalid_config', `no active CA key in ${manifestPath(dataDir)}: run jit-sshd init`);
    signers = next;
    entries = m.keys;
    activeFp = active;
  };

  const refresh = (): boolean => {
    // One stat per call (~µs): a rotation by the admin CLI applies to the very next certificate.
    let m: number;
    try {
      m = statSync(manifestPath(dataDir)).mtimeMs;
    } catch {
      return false;
    }
    if (m === mtimeMs) return false;
    const first = mtimeMs === -1;
    load();
    mtimeMs = m;
    if (!first) onChange?.(entries);
    return true;
  };
  refresh();
  if (!activeFp) load();

  return {
    active: () => signers.get(activeFp)!,
    trusted: () => [...signers.values()],
    byFingerprint: (fp) => signers.get(fp),
    publicLines: () => [...signers.values()].map((s) => s.publicKeyLine),
    entries: () => entries,
    refresh,
  };
}
