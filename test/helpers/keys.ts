/**
 * Test keys made by the real ssh-keygen, in a temp dir the caller removes (tempDir().cleanup()).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findTool } from './tools.js';

export type TestKeyType = 'ed25519' | 'ecdsa256' | 'ecdsa384' | 'ecdsa521' | 'rsa2048' | 'rsa3072' | 'rsa4096' | 'dsa';

export interface TestKey {
  /** Private key file path. */
  path: string;
  /** Contents of `<path>.pub` without the newline. */
  publicLine: string;
  privateText: string;
}

export interface TempDir {
  dir: string;
  cleanup(): void;
}

export function tempDir(prefix = 'jit-test-'): TempDir {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function sshKeygen(args: string[], input?: string): string {
  const tool = findTool('ssh-keygen');
  if (!tool) throw new Error('ssh-keygen not found');
  return execFileSync(tool, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

function typeArgs(type: TestKeyType): string[] {
  switch (type) {
    case 'ed25519':
      return ['-t', 'ed25519'];
    case 'dsa':
      return ['-t', 'dsa'];
    default: {
      const m = /^(ecdsa|rsa)(\d+)$/.exec(type);
      if (!m) throw new Error(`unknown test key type ${type}`);
      return ['-t', m[1], '-b', m[2]];
    }
  }
}

/** ssh-keygen -t … -N passphrase -f dir/name; returns paths and contents. */
export function generateKey(dir: string, name: string, type: TestKeyType, passphrase = '', comment = `${name}@test`): TestKey {
  const path = join(dir, name);
  sshKeygen([...typeArgs(type), '-q', '-N', passphrase, '-C', comment, '-f', path]);
  return {
    path,
    publicLine: readFileSync(`${path}.pub`, 'utf8').trim(),
    privateText: readFileSync(path, 'utf8'),
  };
}
