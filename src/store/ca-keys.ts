/**
 * The CA keyring: a small manifest in dataDir/ca saying which key signs (active), which hosts
 * must still trust (trusted), and which are retired, and where each key lives (a file, a token
 * object, an ssh-agent: see src/signer). Admin commands change the manifest atomically; the
 * daemon reloads it when it changes, so `jit-sshd ca rotate` works while the daemon runs.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { writeFileAtomicSync } from '../files.js';
import { join } from 'node:path';
import { JitError } from '../errors.js';
import { caDir, fileCustody } from '../signer/file.js';
import { publicOnlySigner } from '../signer/checked.js';
import type { CaSigner, HeldKey, KeyCustody, KeyLocation } from '../signer/types.js';
import type { HostCustody } from '../signer/index.js';
import type { CaKeyType } from '../policy/config-schema.js';

export type { CaKeyType };
export { loadCaKeyFile, readPrivateKeyFile } from '../signer/file.js';
export type CaKeyStatus = 'active' | 'trusted' | 'retired';

export type CaKeyEntry = KeyLocation & {
  fingerprint: string;
  publicKey: string;
  status: CaKeyStatus;
  createdAt: string;
  retiredAt?: string;
  /** When `ca retire --destroy` deleted the key object (token) or file. */
  destroyedAt?: string;
};

interface Manifest {
  keys: CaKeyEntry[];
}

export interface CaKeyring {
  /** The key that signs new certificates. */
  active(): CaSigner;
  /** Active and still-trusted keys (what hosts put in TrustedUserCAKeys). */
  trusted(): CaSigner[];
  byFingerprint(fp: string): CaSigner | undefined;
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

const manifestPath = (dataDir: string) => join(caDir(dataDir), 'keyring.json');

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

/**
 * The manifest as stored, for sharing it through a database (store type postgres): undefined
 * when there is none yet. `replaceKeyringManifest` checks the shape before it replaces the file.
 */
export function keyringManifestText(dataDir: string): string | undefined {
  if (!existsSync(manifestPath(dataDir))) return undefined;
  return JSON.stringify(readManifest(dataDir));
}

export function replaceKeyringManifest(dataDir: string, text: string): void {
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
    if (!Array.isArray(m.keys)) throw new Error('keys is not a list');
  } catch (e) {
    throw new JitError('invalid_config', `the shared CA keyring manifest is unreadable: ${(e as Error).message}`);
  }
  mkdirSync(caDir(dataDir), { recursive: true, mode: 0o700 });
  writeManifest(dataDir, m);
}

function entryOf(k: HeldKey, status: CaKeyStatus, now: Date): CaKeyEntry {
  return { ...k.location, fingerprint: k.fingerprint, publicKey: k.publicKeyLine, status, createdAt: now.toISOString() };
}

/**
 * Makes sure there is an active CA key: the one the config names (agent), else an adoptable
 * key the backend already holds (one token key under keyLabel, say from a key ceremony),
 * else a new one. Returns the active entry and whether the keyring changed.
 */
export function initKeyring(dataDir: string, type: CaKeyType, custody: KeyCustody, now = new Date()): { entry: CaKeyEntry; created: boolean } {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  mkdirSync(caDir(dataDir), { recursive: true, mode: 0o700 });
  const m = readManifest(dataDir);
  const active = m.keys.find((k) => k.status === 'active');
  const named = custody.configured();
  if (named) {
    if (active?.fingerprint === named.fingerprint) return { entry: active, created: false };
    // Rotation by configuration: the named key signs from now on, the previous one stays trusted.
    const known = m.keys.find((k) => k.fingerprint === named.fingerprint);
    if (known?.status === 'retired') throw new JitError('invalid_config', `the configured CA key ${named.fingerprint} was retired; name another key`);
    for (const k of m.keys) if (k.status === 'active') k.status = 'trusted';
    const entry = known ?? entryOf(named, 'active', now);
    entry.status = 'active';
    if (!known) m.keys.push(entry);
    writeManifest(dataDir, m);
    return { entry, created: true };
  }
  if (active) return { entry: active, created: false };
  const candidates = custody.adoptable().filter((k) => !m.keys.some((e) => e.fingerprint === k.fingerprint));
  if (candidates.length > 1) {
    throw new JitError('conflict', `the ${custody.backend} backend holds ${candidates.length} keys that could be the CA key (${candidates.map((c) => c.fingerprint).join(', ')}); keep one or set another key label`);
  }
  const entry = entryOf(candidates[0] ?? custody.create(type, now), 'active', now);
  m.keys.push(entry);
  writeManifest(dataDir, m);
  return { entry, created: true };
}

/** New signing key where the backend keeps keys; the old active key stays trusted until retired. */
export function rotateKeyring(dataDir: string, type: CaKeyType, custody: KeyCustody, now = new Date()): CaKeyEntry {
  const m = readManifest(dataDir);
  if (!m.keys.some((k) => k.status === 'active')) throw new JitError('conflict', 'no CA key yet: run jit-sshd init');
  const entry = entryOf(custody.create(type, now), 'active', now);
  for (const k of m.keys) if (k.status === 'active') k.status = 'trusted';
  m.keys.push(entry);
  writeManifest(dataDir, m);
  return entry;
}

/** Deletes a retired key's object (token) or file for good; the manifest keeps the record. */
export function destroyKey(dataDir: string, fingerprint: string, custody: KeyCustody, now = new Date()): CaKeyEntry {
  const m = readManifest(dataDir);
  const entry = m.keys.find((k) => k.fingerprint === fingerprint);
  if (!entry) throw new JitError('not_found', `no CA key with fingerprint ${fingerprint}`);
  if (entry.status !== 'retired') throw new JitError('conflict', `CA key ${fingerprint} is ${entry.status}: only a retired key can be destroyed`);
  if (!entry.destroyedAt) {
    // A key file left from before a move to a token or agent is still the file backend's to delete.
    ('file' in entry ? fileCustody(dataDir) : custody).destroy(entry);
    entry.destroyedAt = now.toISOString();
    writeManifest(dataDir, m);
  }
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

/** Public key blob by fingerprint of every non-retired key, from the manifest alone (no token or agent needed). */
export function keyringPublicKeys(dataDir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const e of readManifest(dataDir).keys) if (e.status !== 'retired') out.set(e.fingerprint, Buffer.from(e.publicKey.split(' ')[1] ?? '', 'base64'));
  return out;
}

/** Opens the keyring for signing; loads every non-retired key. */
export function openKeyring(dataDir: string, custody: KeyCustody, onChange?: (entries: CaKeyEntry[]) => void): CaKeyring {
  let signers = new Map<string, CaSigner>();
  /** Opened keys by role and fingerprint: a trusted key made active again must be opened then. */
  let opened = new Map<string, CaSigner>();
  let entries: CaKeyEntry[] = [];
  let activeFp = '';
  let mtimeMs = -1;
  const manifest = manifestPath(dataDir);

  const load = (): void => {
    const m = readManifest(dataDir);
    const next = new Map<string, CaSigner>();
    const nextOpened = new Map<string, CaSigner>();
    let active = '';
    for (const e of m.keys) {
      if (e.status === 'retired') continue;
      // Only the active key is opened where it lives; trusted ones are public keys to hosts.
      const role = `${e.status === 'active' ? 'signing' : 'public'}:${e.fingerprint}`;
      const signer = opened.get(role) ?? (e.status === 'active' ? custody.open(e, e.fingerprint, e.publicKey) : publicOnlySigner(e.publicKey));
      if (signer.fingerprint !== e.fingerprint) {
        throw new JitError('invalid_config', `CA key ${'file' in e ? `file ${e.file}` : e.fingerprint} does not match its fingerprint in the keyring`);
      }
      nextOpened.set(role, signer);
      next.set(e.fingerprint, signer);
      if (e.status === 'active') active = e.fingerprint;
    }
    if (!active) throw new JitError('invalid_config', `no active CA key in ${manifestPath(dataDir)}: run jit-sshd init`);
    signers = next;
    opened = nextOpened;
    entries = m.keys;
    activeFp = active;
  };

  /** Set while the current event-loop turn has looked (cleared in the next check phase). */
  let lookedThisTurn = false;
  const refresh = (): boolean => {
    // One stat per event-loop turn, not per certificate (under load a turn serves dozens): a
    // rotation by the admin CLI applies to every request the daemon reads after it finished.
    if (lookedThisTurn) return false;
    lookedThisTurn = true;
    setImmediate(() => (lookedThisTurn = false));
    let m: number;
    try {
      m = statSync(manifest).mtimeMs;
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

/**
 * The user CA's fingerprints (every status): a key that ever signed user certificates must
 * never sign host certificates, nor the other way round, or trusting one CA trusts both.
 */
function userFingerprints(dataDir: string): Set<string> {
  return new Set(readManifest(dataDir).keys.map((k) => k.fingerprint));
}

function refuseShared(fp: string): never {
  throw new JitError('invalid_config', `the host CA key ${fp} is also a user CA key; the host CA needs a key of its own (ca.pkcs11.hostKeyLabel, ca.agent.hostKey); name another key, or retire it from one keyring (jit-sshd ca retire [--type host])`);
}

/** The host custody, refusing to adopt, be named or make a key the user CA has. */
function separateFromUser(dataDir: string, custody: KeyCustody): KeyCustody {
  const user = userFingerprints(dataDir);
  const checked = (k: HeldKey): HeldKey => (user.has(k.fingerprint) ? refuseShared(k.fingerprint) : k);
  return {
    ...custody,
    create: (type, now) => checked(custody.create(type, now)),
    configured: () => {
      const k = custody.configured();
      return k && checked(k);
    },
    adoptable: () => custody.adoptable().filter((k) => !user.has(k.fingerprint)),
  };
}

/** Makes sure the host CA has an active key (a no-op when the backend has none configured). */
export function initHostKeyring(dataDir: string, type: CaKeyType, host: HostCustody, now = new Date()): { entry: CaKeyEntry; created: boolean } | undefined {
  if (!('custody' in host)) return undefined;
  return initKeyring(keyringRoot(dataDir, 'host'), type, separateFromUser(dataDir, host.custody), now);
}

/** The host custody for admin commands (rotate, destroy) on the host keyring. */
export function hostCustodyOf(dataDir: string, host: HostCustody): KeyCustody {
  if (!('custody' in host)) throw new JitError('invalid_config', host.unavailable);
  return separateFromUser(dataDir, host.custody);
}

/**
 * Opens the host keyring. Without a host CA key (agent backend, no hostKey) the keys it still
 * lists stay trusted (clients keep accepting hosts whose certificates are valid) but nothing
 * signs: enrolment and renewal answer 503 ca_unavailable with the reason.
 */
export function openHostKeyring(dataDir: string, host: HostCustody, onChange?: (entries: CaKeyEntry[]) => void): CaKeyring {
  const root = keyringRoot(dataDir, 'host');
  const user = userFingerprints(dataDir);
  const shared = readManifest(root).keys.find((k) => k.status !== 'retired' && user.has(k.fingerprint));
  if (shared) refuseShared(shared.fingerprint);
  if ('custody' in host) return openKeyring(root, host.custody, onChange);
  const entries = readManifest(root).keys;
  const signers = entries.filter((e) => e.status !== 'retired').map((e) => publicOnlySigner(e.publicKey));
  return {
    active: () => {
      // The reason names a config field, nothing secret: the host's admin can pass it on.
      throw new JitError('ca_unavailable', host.unavailable);
    },
    trusted: () => signers,
    byFingerprint: (fp) => signers.find((s) => s.fingerprint === fp),
    publicLines: () => signers.map((s) => s.publicKeyLine),
    entries: () => entries,
    refresh: () => false,
  };
}
