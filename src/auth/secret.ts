/**
 * The key that signs login challenges. It must outlive restarts (a challenge issued just before
 * one is still answered after it) and be the same for every replica, so it comes from a source
 * behind this interface: a file in the data dir today, the shared database later.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { JitError } from '../errors.js';

export interface SecretSource {
  /** 32 random bytes, the same on every call and every replica. */
  challengeKey(): Buffer;
}

export const SECRET_FILE = 'auth-secret';

/**
 * `dataDir/auth-secret`, 0600, created on first use. Creation is atomic and never replaces a
 * file another process made first (link(2) fails on an existing name), so two daemons starting
 * at once end up with the same key.
 */
export function fileSecretSource(dataDir: string): SecretSource {
  const path = join(dataDir, SECRET_FILE);
  let key: Buffer | undefined;
  return {
    challengeKey() {
      key ??= readOrCreate(path);
      return key;
    },
  };
}

function readOrCreate(path: string): Buffer {
  try {
    return readSecret(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, randomBytes(32).toString('hex') + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    rmSync(tmp, { force: true });
  }
  return readSecret(path);
}

function readSecret(path: string): Buffer {
  const st = statSync(path);
  if ((st.mode & 0o077) !== 0) {
    throw new JitError('invalid_config', `${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it, it signs login challenges`);
  }
  const text = readFileSync(path, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/.test(text)) throw new JitError('invalid_config', `${path} is not 64 hex digits; delete it to make a new one`);
  return Buffer.from(text, 'hex');
}
