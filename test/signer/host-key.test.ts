/**
 * The host CA key on every custody backend: a separate key in the same token (its own object,
 * ca.pkcs11.hostKeyLabel) or the same ssh-agent (ca.agent.hostKey), never the user CA key. The
 * real ssh-keygen reads the host certificates back, the real ssh client with only an
 * `@cert-authority` line for the served host CA accepts the host, and an unavailable token or
 * agent makes host enrolment answer 503 ca_unavailable like user issuance.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { fingerprintOf } from '../../src/ca/keys.js';
import { api, makeEnv, REPO, type TestEnv } from '../helpers/daemon.js';
import { generateKey, tempDir, type TempDir, type TestKey } from '../helpers/keys.js';
import { describeWithTools } from '../helpers/tools.js';
import {
  changeTokenPin,
  daemonForTest,
  enrolHost,
  expectHostCertificate,
  expectStartRefused,
  initToken,
  issue,
  SOFTHSM_MODULE,
  sshdWithHostCert,
  sshWithHostCa,
  tokenPublicKeys,
  useSoftHsm,
} from './support.js';

const PIN = '8812-host-not-in-logs';
const JITSSHD = join(REPO, 'dist/cli/jit-sshd.js');
const caLines = async (url: string) => ({
  user: String((await api(url, 'GET', '/v1/ca')).body).trim(),
  host: String((await api(url, 'GET', '/v1/ca?type=host')).body).trim(),
});

/**
 * Enrols a host, reads the certificate back with ssh-keygen, then connects with the real ssh:
 * trusted under the served host CA, refused under the user CA (the check can fail).
 */
async function expectHostEnrolsAndIsTrusted(url: string, env: TestEnv): Promise<void> {
  const ca = await caLines(url);
  expect(ca.host.split('\n')).toHaveLength(1);
  const enrolled = await enrolHost(url, env, `host-${Date.now()}`);
  expect(enrolled.status, JSON.stringify(enrolled.body)).toBe(200);
  const certificate = enrolled.body.certificates[0].certificate as string;
  expectHostCertificate(env.dir, certificate, ca.host, ca.user);
  const user = await issue(url, env, `user-${Date.now()}`);
  expect(user.status).toBe(201);
  const sshd = await sshdWithHostCert(enrolled.key, certificate, ca.user);
  const ok = await sshWithHostCa(sshd, { key: user.key, certificate: user.body.certificate }, ca.host);
  expect(ok.stderr + ok.stdout).toContain('host-trusted');
  expect(ok.code).toBe(0);
  const wrongCa = await sshWithHostCa(sshd, { key: user.key, certificate: user.body.certificate }, ca.user);
  expect(wrongCa.code).not.toBe(0);
  expect(wrongCa.stderr).toMatch(/Host key verification failed/);
}

describeWithTools(['softhsm2-util', 'sshd', 'ssh', 'ssh-keygen'], 'host CA key in a PKCS#11 token (SoftHSM2)', () => {
  let tmp: TempDir;
  let tokens = 0;

  function tokenEnv(extra = '', pkcs11Extra = ''): { env: TestEnv; label: string } {
    const label = `h${++tokens}`;
    initToken(label, PIN);
    const env = makeEnv({
      users: { alice: ['oncall'] },
      config: `ca: { backend: pkcs11, pkcs11: { module: ${SOFTHSM_MODULE}, tokenLabel: ${label}${pkcs11Extra} } }\n${extra}`,
    });
    onTestFinished(() => env.cleanup());
    return { env, label };
  }

  beforeAll(() => {
    tmp = tempDir('jit-pkcs11-host-');
    useSoftHsm(tmp.dir);
    process.env.JITSSHD_PKCS11_PIN = PIN;
  });
  afterAll(() => {
    delete process.env.JITSSHD_PKCS11_PIN;
    tmp?.cleanup();
  });

  it.each(['ecdsa-p256', 'rsa'])('ok/%s host CA key made in the token: ssh-keygen -D lists it, hosts enrol, ssh trusts them', async (type) => {
    const { env } = tokenEnv(`caKeyType: ${type}`);
    const d = await daemonForTest(env);
    const ca = await caLines(d.url);
    // No key file in either keyring: the manifests only.
    expect(readdirSync(join(env.dataDir, 'ca'))).toEqual(['keyring.json']);
    expect(readdirSync(join(env.dataDir, 'host', 'ca'))).toEqual(['keyring.json']);
    const listed = tokenPublicKeys(PIN);
    expect(listed).toContain(ca.host.split(' ').slice(0, 2).join(' '));
    expect(listed).toContain(ca.user.split(' ').slice(0, 2).join(' '));
    await expectHostEnrolsAndIsTrusted(d.url, env);
  });

  it('ok/ca rotate --type host makes a new token object; show lists it; retire --destroy deletes only that object', async () => {
    const { env } = tokenEnv('caKeyType: ecdsa-p256', ', hostKeyLabel: edge-host-ca');
    const cli = (...args: string[]) => JSON.parse(execFileSync(process.execPath, [JITSSHD, ...args, '--config', env.configPath, '--json'], { encoding: 'utf8' }));
    const first = cli('init');
    expect(first.host.pkcs11.label).toBe('edge-host-ca');
    expect(first.host.fingerprint).not.toBe(first.fingerprint);
    const second = cli('ca', 'rotate', '--type', 'host');
    expect(second.pkcs11.label).toBe('edge-host-ca');
    const shown = cli('ca', 'show', '--type', 'host') as { fingerprint: string; status: string; held?: string }[];
    expect(shown.map((k) => [k.fingerprint, k.status])).toEqual([
      [first.host.fingerprint, 'trusted'],
      [second.fingerprint, 'active'],
      [first.fingerprint, 'user CA key'],
    ]);
    expect(shown[1].held).toMatch(/^label "edge-host-ca" id [0-9a-f]{16}$/);
    const d = await daemonForTest(env);
    const enrolled = await enrolHost(d.url, env, 'rotated-host');
    expect(enrolled.status).toBe(200);
    expect(enrolled.body.certificates[0].certificate).toBeTruthy();
    await d.close();
    const oldKey = first.host.publicKey.split(' ').slice(0, 2).join(' ');
    expect(tokenPublicKeys(PIN)).toContain(oldKey);
    cli('ca', 'retire', '--type', 'host', first.host.fingerprint, '--force');
    cli('ca', 'retire', '--type', 'host', first.host.fingerprint, '--destroy');
    const after = tokenPublicKeys(PIN);
    expect(after).not.toContain(oldKey);
    expect(after).toContain(second.publicKey.split(' ').slice(0, 2).join(' '));
    expect(after).toContain(first.publicKey.split(' ').slice(0, 2).join(' '));
  });

  it('ok/a fresh host keyring adopts the host-labelled token key, never the user CA key', async () => {
    // As after a key ceremony: the token holds one key pair under each label.
    const { env } = tokenEnv('caKeyType: ecdsa-p256');
    const cli = (...args: string[]) => JSON.parse(execFileSync(process.execPath, [JITSSHD, ...args, '--config', env.configPath, '--json'], { encoding: 'utf8' }));
    const first = cli('init');
    writeFileSync(join(env.dataDir, 'host', 'ca', 'keyring.json'), '{ "keys": [] }\n', { mode: 0o600 });
    const again = cli('init');
    expect(again.host.created).toBe(true);
    expect(again.host.fingerprint).toBe(first.host.fingerprint);
    expect(again.host.fingerprint).not.toBe(first.fingerprint);
  });

  it('ok/token refuses the daemon (PIN changed) → host enrolment 503 ca_unavailable; PIN back → enrolment resumes', async () => {
    const { env, label } = tokenEnv();
    const d = await daemonForTest(env);
    expect((await enrolHost(d.url, env, 'before')).status).toBe(200);
    changeTokenPin(label, PIN, 'changed-4242');
    const down = await enrolHost(d.url, env, 'during');
    expect([down.status, down.body.error?.code]).toEqual([503, 'ca_unavailable']);
    expect(JSON.stringify(down.body)).not.toContain(PIN);
    expect((await api(d.url, 'GET', '/healthz')).status).toBe(200);
    changeTokenPin(label, 'changed-4242', PIN);
    expect((await enrolHost(d.url, env, 'after')).status).toBe(200);
  });

  it('fail/host key label equal to the user key label: config refused', async () => {
    const { env } = tokenEnv('', ', keyLabel: one-ca, hostKeyLabel: one-ca');
    const r = spawnSync(process.execPath, [JITSSHD, 'init', '--config', env.configPath], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/ca\.pkcs11\.hostKeyLabel: must differ from keyLabel/);
  });
});

describeWithTools(['ssh-agent', 'ssh-add', 'sshd', 'ssh', 'ssh-keygen'], 'host CA key in an ssh-agent', () => {
  let tmp: TempDir;
  let agents = 0;

  async function startAgent(): Promise<{ socket: string; add(k: TestKey): void; stop(): Promise<void> }> {
    const socket = join(tmp.dir, `agent-${++agents}.sock`);
    const proc: ChildProcess = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    const stop = (): Promise<void> =>
      new Promise<void>((res) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return res();
        proc.once('exit', () => res());
        proc.kill('SIGTERM');
      });
    onTestFinished(() => stop());
    for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 20));
    if (!existsSync(socket)) throw new Error('ssh-agent did not create its socket');
    return { socket, add: (k) => void execFileSync('ssh-add', [k.path], { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: 'pipe' }), stop };
  }

  function agentEnv(socket: string, key: string, hostKey?: string): TestEnv {
    const host = hostKey ? `, hostKey: "${hostKey}"` : '';
    const env = makeEnv({ users: { alice: ['oncall'] }, config: `ca: { backend: agent, agent: { socket: ${socket}, key: "${key}"${host} } }\n` });
    onTestFinished(() => env.cleanup());
    return env;
  }

  const fp = (k: TestKey) => fingerprintOf(Buffer.from(k.publicLine.split(' ')[1], 'base64'));

  beforeAll(() => {
    tmp = tempDir('jit-agent-host-');
  });
  afterAll(() => tmp?.cleanup());

  it('ok/ca.agent.hostKey: the agent signs host certificates, ssh trusts the host; no key file anywhere', async () => {
    const agent = await startAgent();
    const [userCa, hostCa] = [generateKey(tmp.dir, `user-ca-${agents}`, 'ed25519'), generateKey(tmp.dir, `host-ca-${agents}`, 'rsa3072')];
    agent.add(userCa);
    agent.add(hostCa);
    const env = agentEnv(agent.socket, userCa.publicLine, fp(hostCa));
    const d = await daemonForTest(env);
    const ca = await caLines(d.url);
    expect(ca.host.split(' ')[1]).toBe(hostCa.publicLine.split(' ')[1]);
    expect(readdirSync(join(env.dataDir, 'host', 'ca'))).toEqual(['keyring.json']);
    await expectHostEnrolsAndIsTrusted(d.url, env);
    // RSA host CA: the agent was asked for rsa-sha2-512 and did so.
    const enrolled = await enrolHost(d.url, env, 'rsa-check');
    const certFile = join(env.dir, 'rsa-check-cert.pub');
    writeFileSync(certFile, enrolled.body.certificates[0].certificate + '\n');
    const info = execFileSync('ssh-keygen', ['-L', '-f', certFile], { encoding: 'utf8' });
    expect(info).toMatch(/Signing CA: RSA \S+ \(using rsa-sha2-512\)/);
  });

  it('ok/without ca.agent.hostKey the daemon serves users; host enrolment answers 503 ca_unavailable naming the setting', async () => {
    const agent = await startAgent();
    const userCa = generateKey(tmp.dir, `user-only-${agents}`, 'ed25519');
    agent.add(userCa);
    const env = agentEnv(agent.socket, userCa.publicLine);
    const d = await daemonForTest(env);
    expect((await issue(d.url, env, 'u')).status).toBe(201);
    const r = await enrolHost(d.url, env, 'no-host-ca');
    expect([r.status, r.body.error?.code]).toEqual([503, 'ca_unavailable']);
    expect(r.body.error.message).toMatch(/ca\.agent\.hostKey is not set/);
    // No host CA key was made on disk behind the operator's back.
    expect(existsSync(join(env.dataDir, 'host', 'ca'))).toBe(false);
    expect(String((await api(d.url, 'GET', '/v1/ca?type=host')).body).trim()).toBe('');
  });

  it('ok/agent gone → host enrolment 503 ca_unavailable, daemon stays up', async () => {
    const agent = await startAgent();
    const [userCa, hostCa] = [generateKey(tmp.dir, `user-gone-${agents}`, 'ed25519'), generateKey(tmp.dir, `host-gone-${agents}`, 'ed25519')];
    agent.add(userCa);
    agent.add(hostCa);
    const env = agentEnv(agent.socket, fp(userCa), hostCa.publicLine);
    const d = await daemonForTest(env);
    expect((await enrolHost(d.url, env, 'before')).status).toBe(200);
    await agent.stop();
    const down = await enrolHost(d.url, env, 'during');
    expect([down.status, down.body.error?.code]).toEqual([503, 'ca_unavailable']);
    expect((await api(d.url, 'GET', '/healthz')).status).toBe(200);
  });

  it('fail/hostKey names the user CA key (line vs fingerprint): start refused in one line', async () => {
    const agent = await startAgent();
    const userCa = generateKey(tmp.dir, `same-${agents}`, 'ed25519');
    agent.add(userCa);
    const env = agentEnv(agent.socket, userCa.publicLine, fp(userCa));
    await expectStartRefused(env, /^the host CA key SHA256:\S+ is also a user CA key; the host CA needs a key of its own/);
  });

  it('fail/hostKey not in the agent: start refused naming ca.agent.hostKey', async () => {
    const agent = await startAgent();
    const [userCa, hostCa] = [generateKey(tmp.dir, `u-${agents}`, 'ed25519'), generateKey(tmp.dir, `h-missing-${agents}`, 'ed25519')];
    agent.add(userCa);
    const env = agentEnv(agent.socket, userCa.publicLine, hostCa.publicLine);
    await expectStartRefused(env, /^ca\.agent\.hostKey: the ssh-agent at \S+ does not hold SHA256:\S+ \(it holds 1 key; add it with ssh-add\)$/);
  });
});
