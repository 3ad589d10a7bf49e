/**
 * The file backend: one OpenSSH private key file per CA key in dataDir/ca (0600, readable by
 * `ssh-keygen` in an emergency). The key is in this process's memory while the daemon runs.
 */
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { JitError } from '../errors.js';
import { writeFileAtomicSync } from '../files.js';
import { createSigner } from '../ca/signer.js';
import { decodeOpenSshPrivateKey, encodeOpenSshPrivateKey } from '../ca/openssh-key.js';
import type { Signer } from '../ca/types.js';
import type { CaKeyType } from '../policy/config-schema.js';
import type { CaSigner, HeldKey, KeyCustody, KeyLocation } from './types.js';

export const caDir = (dataDir: string): string => join(dataDir, 'ca');

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

/** An in-process Signer behind the async CaSigner interface. */
export function asyncSigner(s: Signer): CaSigner {
  return {
    publicKeyBlob: s.publicKeyBlob,
    keyType: s.keyType,
    publicKeyLine: s.publicKeyLine,
    fingerprint: s.fingerprint,
    sign: (data) => s.signInPool(data),
  };
}

function fileOf(location: KeyLocation): string {
  if (!('file' in location)) throw new JitError('invalid_config', 'the active CA key is not a file, but ca.backend is file: run jit-sshd ca rotate to make one');
  return location.file;
}

export function fileCustody(dataDir: string): KeyCustody {
  return {
    backend: 'file',
    create(type, now): HeldKey {
      mkdirSync(caDir(dataDir), { recursive: true, mode: 0o700 });
      const key = generateKey(type);
      const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
      const file = `ca-${stamp}-${randomBytes(3).toString('hex')}.key`;
      const comment = `jit-ssh-ca-${stamp}`;
      writeFileAtomicSync(join(caDir(dataDir), file), encodeOpenSshPrivateKey(key, comment, randomBytes(4).readUInt32BE(0)), 0o600);
      const signer = createSigner(key, comment);
      return { location: { file }, publicKeyLine: signer.publicKeyLine, fingerprint: signer.fingerprint };
    },
    configured: () => undefined,
    adoptable: () => [],
    open(location, _fingerprint, publicKeyLine) {
      return asyncSigner(loadCaKeyFile(join(caDir(dataDir), fileOf(location)), publicKeyLine.split(' ')[2]));
    },
    list: () => [],
    destroy(location) {
      rmSync(join(caDir(dataDir), fileOf(location)), { force: true });
    },
    close: async () => undefined,
  };
}
