/**
 * Shared by the custody tests: a SoftHSM2 token directory of their own, a daemon whose CA key
 * lives elsewhere, and the real sshd as the judge of what it signs.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { expect, onTestFinished } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { JitError } from '../../src/errors.js';
import { api, login, startTestDaemon, subjectKey, type TestEnv } from '../helpers/daemon.js';
import { generateKey, sshKeygen, type TestKey, type TestKeyType } from '../helpers/keys.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import { findTool } from '../helpers/tools.js';
import { run, type RunResult } from '../e2e/helpers/hosts.js';
import { createHostToken } from '../../src/store/host-tokens.js';

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

/**
 * Changes the token's user PIN from inside this process and closes all its sessions, which logs
 * the whole application (the daemon under test included) out, as a token reset does.
 */
export function changeTokenPin(label: string, from: string, to: string): void {
  // Same process, same PKCS#11 application as the daemon: the module is already initialised.
  const p11 = new pkcs11js.PKCS11();
  p11.load(SOFTHSM_MODULE);
  const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === label)!;
  const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  try {
    p11.C_Login(session, pkcs11js.CKU_USER, from);
  } catch (e) {
    if (!/CKR_USER_ALREADY_LOGGED_IN/.test(String(e))) throw e;
  }
  p11.C_SetPIN(session, from, to);
  p11.C_CloseAllSessions(slot);
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

/** Enrols a fresh host key of the given type for target prod-db (host name 127.0.0.1). */
export async function enrolHost(url: string, env: TestEnv, name: string, type: TestKeyType = 'ecdsa256'): Promise<{ status: number; body: any; key: TestKey }> {
  const key = generateKey(env.dir, name, type);
  const { token } = createHostToken(env.dataDir, { target: 'prod-db', ttlSeconds: 600 });
  const r = await api(url, 'POST', '/v1/hosts/enroll', { token, target: 'prod-db', publicKeys: [key.publicLine] });
  return { ...r, key };
}

/**
 * `ssh-keygen -L` of a host certificate: a host certificate for 127.0.0.1 signed by hostCaLine
 * (the served host CA key), never by the user CA.
 */
export function expectHostCertificate(dir: string, certificate: string, hostCaLine: string, userCaLine: string): void {
  const certFile = join(dir, `inspect-${Date.now()}-cert.pub`);
  writeFileSync(certFile, certificate + '\n');
  const caFile = join(dir, `inspect-${Date.now()}-ca.pub`);
  writeFileSync(caFile, hostCaLine + '\n');
  const info = sshKeygen(['-L', '-f', certFile]);
  expect(info).toMatch(/Type: \S+ host certificate/);
  expect(info).toMatch(/Principals: \n\s+127\.0\.0\.1\n/);
  const hostCaFp = sshKeygen(['-l', '-f', caFile]).split(' ')[1];
  expect(info).toMatch(new RegExp(`Signing CA: \\S+ ${hostCaFp.replace(/[+/]/g, '\\$&')}`));
  expect(hostCaLine.split(' ')[1]).not.toBe(userCaLine.split(' ')[1]);
}

/**
 * A real sshd presenting the enrolled host key and its certificate; the real ssh client, with only
 * `@cert-authority 127.0.0.1 <caLine>` in known_hosts and strict checking, must (or must not) connect.
 */
export async function sshWithHostCa(
  sshd: Sshd,
  user: { key: TestKey; certificate: string },
  caLine: string,
): Promise<RunResult> {
  const knownHosts = join(sshd.dir, `known_hosts-${Date.now()}`);
  writeFileSync(knownHosts, `@cert-authority 127.0.0.1 ${caLine}\n`);
  const certFile = `${user.key.path}-cert.pub`;
  writeFileSync(certFile, user.certificate + '\n');
  const args = sshd.sshArgs(user.key.path, certFile).map((a) => (a === 'StrictHostKeyChecking=no' ? 'StrictHostKeyChecking=yes' : a === 'UserKnownHostsFile=/dev/null' ? `UserKnownHostsFile=${knownHosts}` : a));
  return await run(findTool('ssh')!, ['-o', 'HostKeyAlias=127.0.0.1', '-o', 'HostKeyAlgorithms=ecdsa-sha2-nistp256-cert-v01@openssh.com', ...args, 'echo host-trusted']);
}

/** Starts an sshd that presents hostKey with its certificate (written beside it) and trusts userCaLine. */
export async function sshdWithHostCert(host: TestKey, certificate: string, userCaLine: string): Promise<Sshd> {
  const certFile = `${host.path}-cert.pub`;
  writeFileSync(certFile, certificate + '\n');
  const sshd = await startSshd({ principalsFor: { root: ['readonly@prod-db'] }, trustedCaKeys: userCaLine, extraConfig: [`HostKey ${host.path}`, `HostCertificate ${certFile}`] });
  onTestFinished(() => sshd.stop());
  return sshd;
}
