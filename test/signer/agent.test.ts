/**
 * ca.backend agent against a real OpenSSH ssh-agent: every signature is an agent sign request
 * (rsa-sha2-512 for RSA), sshd accepts the result, and the agent going away or refusing gives
 * 503 ca_unavailable until it is back, without a crash.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { parseCertificate } from '../../src/ca/cert.js';
import { fingerprintOf } from '../../src/ca/keys.js';
import { startDaemon } from '../../src/daemon.js';
import { pino } from 'pino';
import { api, makeEnv, REPO, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { generateKey, tempDir, type TempDir, type TestKey } from '../helpers/keys.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import { describeWithTools } from '../helpers/tools.js';
import { daemonForTest, expectSshdAccepts, expectStartRefused, issue, trustCaKeys } from './support.js';

const JITSSHD = join(REPO, 'dist/cli/jit-sshd.js');

describeWithTools(['ssh-agent', 'ssh-add', 'sshd', 'ssh', 'ssh-keygen'], 'CA key in an ssh-agent', () => {
  let tmp: TempDir;
  let sshd: Sshd;
  let agents = 0;
  const running = new Set<ChildProcess>();

  /** A real ssh-agent on its own socket (foreground, so the test owns the process). */
  async function startAgent(socket = join(tmp.dir, `agent-${++agents}.sock`)): Promise<{ socket: string; proc: ChildProcess; add(k: TestKey): void; remove(k: TestKey): void; stop(): Promise<void> }> {
    const proc = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    const stop = (): Promise<void> =>
      new Promise<void>((res) => {
        running.delete(proc);
        if (proc.exitCode !== null || proc.signalCode !== null) return res();
        proc.once('exit', () => res());
        proc.kill('SIGTERM');
      });
    running.add(proc);
    onTestFinished(() => stop());
    for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 20));
    if (!existsSync(socket)) throw new Error('ssh-agent did not create its socket');
    const env = { ...process.env, SSH_AUTH_SOCK: socket };
    return {
      socket,
      proc,
      add: (k) => void execFileSync('ssh-add', [k.path], { env, stdio: 'pipe' }),
      remove: (k) => void execFileSync('ssh-add', ['-d', k.path], { env, stdio: 'pipe' }),
      stop,
    };
  }

  function agentEnv(socket: string, key: string): TestEnv {
    return makeEnv({ users: { alice: ['oncall'] }, config: `ca: { backend: agent, agent: { socket: ${socket}, key: "${key}" } }\n` });
  }

  beforeAll(async () => {
    tmp = tempDir('jit-agent-ca-');
    sshd = await startSshd({ principalsFor: { root: ['readonly@prod-db'] } });
  });
  afterAll(async () => {
    for (const p of running) p.kill('SIGTERM');
    await sshd?.stop();
    tmp?.cleanup();
  });

  it.each([
    ['ed25519', 'fingerprint'],
    ['rsa3072', 'public key line'],
  ] as const)('ok/%s CA key named by %s: the agent signs, sshd accepts', async (type, naming) => {
    const agent = await startAgent();
    const ca = generateKey(tmp.dir, `ca-${type}-${agents}`, type);
    agent.add(ca);
    const caBlob = Buffer.from(ca.publicLine.split(' ')[1], 'base64');
    const env = agentEnv(agent.socket, naming === 'fingerprint' ? fingerprintOf(caBlob) : ca.publicLine);
    const d = await daemonForTest(env);
    {
      const caLine = String((await api(d.url, 'GET', '/v1/ca')).body).trim();
      expect(caLine.split(' ').slice(0, 2).join(' ')).toBe(ca.publicLine.split(' ').slice(0, 2).join(' '));
      expect(readdirSync(join(env.dataDir, 'ca'))).toEqual(['keyring.json']);
      const r = await issue(d.url, env, 'k');
      expect(r.status).toBe(201);
      const cert = parseCertificate(r.body.certificate);
      expect(cert.signatureKey.equals(caBlob)).toBe(true);
      expect(cert.signature.subarray(4, 4 + cert.signature.readUInt32BE(0)).toString()).toBe(type === 'rsa3072' ? 'rsa-sha2-512' : 'ssh-ed25519');
      trustCaKeys(sshd, [caLine]);
      await expectSshdAccepts(sshd, r.key, r.body.certificate);
    }
  });

  it('ok/agent gone → 503 ca_unavailable, daemon stays up; agent back → issuance resumes', async () => {
    let agent = await startAgent();
    const ca = generateKey(tmp.dir, `ca-gone-${agents}`, 'ed25519');
    agent.add(ca);
    const env = agentEnv(agent.socket, ca.publicLine);
    const logged: string[] = [];
    onTestFinished(() => env.cleanup());
    const d = await startDaemon({ configPath: env.configPath, log: pino({ level: 'error' }, { write: (s: string) => void logged.push(s) }) });
    onTestFinished(() => d.close());
    {
      expect((await issue(d.url, env, 'k1')).status).toBe(201);
      await agent.stop();
      const down = await issue(d.url, env, 'k2');
      expect(down.status).toBe(503);
      expect(down.body.error.code).toBe('ca_unavailable');
      // The requester learns which key and that it is temporary; the socket path stays in the CA log.
      expect(down.body.error.message).toMatch(/^CA key SHA256:\S+ cannot sign right now; try again shortly$/);
      expect(logged.join('')).toMatch(/"cause":"ssh-agent at \S+ cannot sign: cannot reach ssh-agent at/);
      expect((await api(d.url, 'GET', '/healthz')).status).toBe(200);
      agent = await startAgent(agent.socket);
      const stillEmpty = await issue(d.url, env, 'k3');
      expect([stillEmpty.status, stillEmpty.body.error.code]).toEqual([503, 'ca_unavailable']); // agent back, key not yet
      agent.add(ca);
      expect((await issue(d.url, env, 'k4')).status).toBe(201);
      agent.remove(ca);
      expect((await issue(d.url, env, 'k5')).status).toBe(503);
      agent.add(ca);
      expect((await issue(d.url, env, 'k6')).status).toBe(201);
    }
  });

  it('ok/naming another agent key rotates: new key signs, old key stays trusted until retired; ca rotate refuses', async () => {
    const agent = await startAgent();
    const [oldCa, newCa] = [generateKey(tmp.dir, `ca-old-${agents}`, 'ed25519'), generateKey(tmp.dir, `ca-new-${agents}`, 'ecdsa256')];
    agent.add(oldCa);
    agent.add(newCa);
    const env = agentEnv(agent.socket, oldCa.publicLine);
    onTestFinished(() => env.cleanup());
    {
      await (await startTestDaemon(env)).close();
      writeFileSync(env.configPath, `dataDir: ${env.dataDir}\npolicy: ${env.policyPath}\nlisten: 127.0.0.1:0\nlogLevel: silent\nca: { backend: agent, agent: { socket: ${agent.socket}, key: "${newCa.publicLine}" } }\n`);
      const d = await startTestDaemon(env);
      try {
        const lines = String((await api(d.url, 'GET', '/v1/ca')).body).trim().split('\n');
        expect(lines.map((l) => l.split(' ')[0]).sort()).toEqual(['ecdsa-sha2-nistp256', 'ssh-ed25519']);
        const r = await issue(d.url, env, 'k');
        expect(parseCertificate(r.body.certificate).signatureKey.toString('base64')).toBe(newCa.publicLine.split(' ')[1]);
      } finally {
        await d.close();
      }
      const cli = (...args: string[]) => spawnSync(process.execPath, [JITSSHD, ...args, '--config', env.configPath], { encoding: 'utf8' });
      const rotate = cli('ca', 'rotate');
      expect(rotate.status).not.toBe(0);
      expect(rotate.stderr.trim()).toMatch(/jit-sshd does not create agent keys; add the new key to the agent \(ssh-add\) and name it in ca\.agent\.key$/);
      const oldFp = fingerprintOf(Buffer.from(oldCa.publicLine.split(' ')[1], 'base64'));
      expect(cli('ca', 'retire', oldFp, '--force').status).toBe(0);
      expect(cli('ca', 'show').stdout).not.toContain(oldCa.publicLine.split(' ')[1]);
    }
  });

  it.each([
    ['fail/agent unreachable at start', false, /^ca\.agent\.socket: cannot reach an ssh-agent at \S+ \(/],
    ['fail/agent lacks the key at start', true, /^ca\.agent\.key: the ssh-agent at \S+ does not hold SHA256:\S+ \(it holds 0 keys; add it with ssh-add\)$/],
  ])('%s: start refused in one line', async (_name, withAgent, message) => {
    const agent = withAgent ? await startAgent() : undefined;
    const ca = generateKey(tmp.dir, `ca-missing-${agents}-${withAgent}`, 'ed25519');
    const env = agentEnv(agent?.socket ?? join(tmp.dir, 'no-agent.sock'), ca.publicLine);
    onTestFinished(() => env.cleanup());
    await expectStartRefused(env, message);
  });
});
