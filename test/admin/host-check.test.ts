/**
 * jit-sshd host check: a real sshd with a host certificate (signed by a test host CA) and a
 * host that does not exist; the probe must report keys and certificate exactly as ssh-keygen
 * sees them, and exit 3 for the missing host.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeHostCert, keyscanLines, mapLimited } from '../../src/cli/commands/host-probe.js';
import { makeEnv, REPO, type TestEnv } from '../helpers/daemon.js';
import { generateKey, sshKeygen } from '../helpers/keys.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import { describeWithTools } from '../helpers/tools.js';

const BIN = join(REPO, 'dist/cli/jit-sshd.js');

describeWithTools(['sshd', 'ssh-keygen', 'ssh-keyscan'], 'jit-sshd host check', () => {
  let env: TestEnv;
  let sshd: Sshd;
  let hostKeyFp: string;
  let hostCaFp: string;
  const run = (...args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, 'host', 'check', ...args, '--config', env.configPath], { encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const fp = (file: string) => sshKeygen(['-l', '-f', file]).split(' ')[1];

  beforeAll(async () => {
    env = makeEnv({ targets: '  lab: { hosts: [127.0.0.1], accounts: [readonly] }\n  half: { hosts: [127.0.0.1, no-such-host.invalid], accounts: [readonly] }' });
    const hostKey = generateKey(env.dir, 'lab_host_ecdsa', 'ecdsa256');
    const hostCa = generateKey(env.dir, 'host_ca', 'ed25519');
    sshKeygen(['-q', '-s', hostCa.path, '-h', '-I', 'lab-host', '-n', '127.0.0.1,lab1', '-V', '-5m:+1h', `${hostKey.path}.pub`]);
    hostKeyFp = fp(`${hostKey.path}.pub`);
    hostCaFp = fp(`${hostCa.path}.pub`);
    sshd = await startSshd({ trustedCaKeys: '', extraConfig: [`HostKey ${hostKey.path}`, `HostCertificate ${hostKey.path}-cert.pub`] });
  });
  afterAll(async () => {
    await sshd?.stop();
    env?.cleanup();
  });

  it('ok/reports reachability, every host key and the host certificate with its CA, names and end', () => {
    const r = run('--target', 'lab', '--port', String(sshd.port), '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [h] = JSON.parse(r.stdout).hosts;
    expect(h).toMatchObject({ host: '127.0.0.1', port: sshd.port, reachable: true });
    expect(h.keys.map((k: { fingerprint: string }) => k.fingerprint)).toContain(hostKeyFp);
    expect(h.keys.map((k: { fingerprint: string }) => k.fingerprint)).toContain(fp(join(sshd.dir, 'host_ed25519.pub')));
    expect(h.certificates).toEqual([
      expect.objectContaining({ type: 'ecdsa-sha2-nistp256-cert-v01@openssh.com', keyFingerprint: hostKeyFp, caFingerprint: hostCaFp, principals: ['127.0.0.1', 'lab1'], namesHost: true, current: true }),
    ]);
    const text = run('--target', 'lab', '--port', String(sshd.port));
    expect(text.stdout).toContain(`127.0.0.1:${sshd.port}: reachable\n`);
    expect(text.stdout).toMatch(new RegExp(`host cert {2}ecdsa-sha2-nistp256-cert-v01@openssh.com signed by ${hostCaFp.replace(/[+/]/g, '\\$&')}, for 127.0.0.1,lab1, valid until (\\d{4}-\\d\\d-\\d\\d )?\\d\\d:\\d\\d:\\d\\d \\S+`)); // the day is named when it is not today
  });

  it('fail/a host that does not answer is listed as such; exit 3 naming it; the others are still reported', () => {
    const r = run('--target', 'half', '--port', String(sshd.port), '--timeout', '2');
    expect(r.code).toBe(3);
    expect(r.stdout).toContain(`127.0.0.1:${sshd.port}: reachable`);
    expect(r.stdout).toMatch(/no-such-host\.invalid:\d+: UNREACHABLE \((ENOTFOUND|EAI_AGAIN)\)/);
    expect(r.stderr).toBe('error: 1 of 2 hosts of half did not answer: no-such-host.invalid\n');
    const closed = run('--target', 'lab', '--port', '9', '--timeout', '2');
    expect(closed.code).toBe(3);
    expect(closed.stdout).toBe('127.0.0.1:9: UNREACHABLE (ECONNREFUSED)\n');
  });

  it('fail/an unknown target is exit 1 with a did-you-mean; a bad port is refused', () => {
    const r = run('--target', 'lba');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('error: --target: no target lba in the policy; did you mean lab?\n');
    expect(run('--target', 'lab', '--port', '70000').stderr).toBe('error: --port: must be 1–65535\n');
  });
});

describe('host probe pieces', () => {
  it('ok/keyscan lines: comments and noise skipped', () => {
    const got = keyscanLines('# 127.0.0.1:22 SSH-2.0-OpenSSH_9.2\n[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==\nssh-ed25519-cert-v01@openssh.com AAAA\n\ngarbage line here x\n');
    expect(got.map((k) => k.type)).toEqual(['ssh-ed25519', 'ssh-ed25519-cert-v01@openssh.com']);
  });
  it('fail/an unreadable certificate is reported, not thrown', () => {
    expect(describeHostCert('ssh-ed25519-cert-v01@openssh.com', Buffer.from('nope'), 'h', 0)).toMatchObject({ current: false, namesHost: false, problem: expect.any(String) });
  });
  it('ok/mapLimited keeps order and never runs more than the limit at once', async () => {
    let running = 0;
    let peak = 0;
    const out = await mapLimited([5, 1, 4, 2, 3], 2, async (n) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, n * 5));
      running--;
      return n * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30]);
    expect(peak).toBe(2);
  });
});
