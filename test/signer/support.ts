/**
 * Shared by the custody tests: a SoftHSM2 token directory of their own, a daemon whose CA key
 * lives elsewhere, and the real sshd as the judge of what it signs.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, onTestFinished } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { JitError } from '../../src/errors.js';
import { api, login, startTestDaemon, subjectKey, type TestEnv } from '../helpers/daemon.js';
import type { TestKey } from '../helpers/keys.js';
import type { Sshd } from '../helpers/sshd.js';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

/** Points SoftHSM2 at a token directory under dir; call before the module is first loaded. */
export function useSoftHsm(dir: string): void {
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens, { recursive: true });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  process.env.SOFTHSM2_CONF = conf;
}

export function initToken(label: string, pin: string): void {
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', `so-${pin}`], { stdio: 'pipe' });
}

/** The public keys `ssh-keygen -D` reads from the token (OpenSSH's own PKCS#11 client). */
export function tokenPublicKeys(pin: string): string[] {
  const out = execFileSync('ssh-keygen', ['-D', SOFTHSM_MODULE], { encoding: 'utf8', env: { ...process.env, SSH_ASKPASS: '' }, input: `${pin}\n`, stdio: ['pipe', 'pipe', 'pipe'] });
  return out.split('\n').filter((l) => l.trim()).map((l) => l.split(' ').slice(0, 2).join(' '));
}

/** alice's check-logs request: auto-approved, principal readonly@prod-db. */
export async function issue(url: string, env: TestEnv, name: string): Promise<{ status: number; body: any; key: TestKey }> {
  const token = await login(url, 'alice', env.keys.alice);
  const key = subjectKey(env, name);
  const r = await api(url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: key.publicLine }, token);
  return { ...r, key };
}

/** Writes the certificate beside its key and has the real sshd accept it. */
export async function expectSshdAccepts(sshd: Sshd, key: TestKey, certificate: string): Promise<void> {
  const certFile = `${key.path}-cert.pub`;
  writeFileSync(certFile, certificate + '\n');
  const r = await sshd.runSsh(key.path, certFile, 'echo accepted');
  expect(r.stderr + r.stdout).toContain('accepted');
  expect(r.code).toBe(0);
}

/** Rewrites the sshd harness's TrustedUserCAKeys file (sshd reads it at every login). */
export function trustCaKeys(sshd: Sshd, lines: string[]): void {
  writeFileSync(join(sshd.dir, 'trusted-user-ca-keys.pub'), lines.map((l) => `${l}\n`).join(''));
}

/** A test daemon closed (and its env removed) when the test ends, pass or fail. */
export async function daemonForTest(env: TestEnv): Promise<RunningDaemon> {
  onTestFinished(() => env.cleanup());
  const d = await startTestDaemon(env);
  onTestFinished(() => d.close());
  return d;
}

/** The start is refused with invalid_config: one line matching message, never containing secret. */
export async function expectStartRefused(env: TestEnv, message: RegExp, secret?: string): Promise<void> {
  const err = await startTestDaemon(env).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(JitError);
  expect((err as JitError).code).toBe('invalid_config');
  expect((err as JitError).message).toMatch(message);
  expect((err as JitError).message).not.toContain('\n');
  if (secret) expect((err as JitError).message).not.toContain(secret);
}
