/**
 * Hosts trusted both ways, end to end with real OpenSSH: a private sshd configured only by
 * `host-setup.sh --root --enroll-token-file`, the known_hosts `jit-ssh login` writes, plain
 * `ssh -o StrictHostKeyChecking=yes` (no prompt; refused with an empty known_hosts or a host
 * certificate from another CA), renewal by the host's own sync script, the single-use token, and
 * `ssh -F <jit-ssh config output>` logging in again by itself after the user certificate expired.
 *
 * The daemon runs on a clock the test can move, so "issued 20 days ago" and "already expired"
 * are real certificates that the real sshd and ssh judge by the real time.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { makeEnv, REPO, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { generateKey, sshKeygen } from '../helpers/keys.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import { describeWithTools, findTool } from '../helpers/tools.js';
import { baseEnv, ensureBuilt, runCli } from '../cli/run-cli.js';
import { HOST_SETUP, hostSetup, hostSync, makeHostRoot, run, type TestHost } from './helpers/hosts.js';

const DAY = 86_400_000;
const HOST = 'db1.hc.test';

describeWithTools(['sshd', 'ssh', 'ssh-keygen', 'curl'], 'e2e: host certificates and jit-ssh config', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let offset = 0;
  let host: TestHost;
  let rogue: TestHost;
  let sshd: Sshd;
  let rogueSshd: Sshd;
  let home: string;
  const ssh = findTool('ssh')!;

  const hostToken = (args: string[]) =>
    execFileSync(process.execPath, [join(REPO, 'dist/cli/jit-sshd.js'), 'host', 'token', '--config', env.configPath, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  const tokenFile = (token: string) => {
    const f = join(home, `token-${Date.now()}`);
    writeFileSync(f, token + '\n', { mode: 0o600 });
    return f;
  };
  const enrolSetup = (h: TestHost, file: string) =>
    run('bash', [HOST_SETUP, '--server', d.url, '--target', 'hc', '--root', h.root, '--enroll-token-file', file]);
  const cli = (args: string[], extra: Record<string, string> = {}) =>
    runCli([...args, '--server', d.url], baseEnv(home, { JITSSH_IDENTITY: env.keys.alice.path, JITSSH_USER: 'alice', ...extra }));
  /** ssh to HOST on the given sshd, checking host keys against knownHosts strictly. */
  const sshTo = (port: number, knownHosts: string, alias = HOST, extra: string[] = []) =>
    run(ssh, [
      '-F', '/dev/null',
      '-o', 'BatchMode=yes',
      '-o', 'IdentityAgent=none',
      '-o', 'HostName=127.0.0.1',
      '-p', String(port),
      '-o', `HostKeyAlias=${alias}`,
      '-o', `UserKnownHostsFile=${knownHosts}`,
      '-o', 'StrictHostKeyChecking=yes',
      '-i', join(home, '.ssh/jit/hc'),
      '-o', `CertificateFile=${join(home, '.ssh/jit/hc-cert.pub')}`,
      '-o', 'IdentitiesOnly=yes',
      ...extra,
      `root@${alias}`,
      'echo reached-$(hostname)',
    ]);

  beforeAll(async () => {
    ensureBuilt();
    env = makeEnv({
      targets: `  hc: { hosts: [${HOST}, db2.hc.test], accounts: [root] }
`,
      tasks: `  hc-shell: { accounts: [root], maxTtl: 30m }
`,
      rules: `  - name: hc-auto
    users: [alice]
    targets: [hc]
    tasks: [hc-shell]
    approval: auto
`,
    });
    d = await startTestDaemon(env, { clock: { now: () => Date.now() + offset } });
    home = mkdtempSync(join(tmpdir(), 'jit-hc-home-'));
    host = makeHostRoot('hc');
    rogue = makeHostRoot('rogue');
  });
  afterAll(async () => {
    await sshd?.stop();
    await rogueSshd?.stop();
    await d?.close();
    host?.cleanup();
    rogue?.cleanup();
    if (home) rmSync(home, { recursive: true, force: true });
    env?.cleanup();
  });

  it('ok/host-setup --enroll-token-file alone: host certificate next to the key, HostCertificate line, sshd -t passes; the token is single use', async () => {
    // Issued "20 days ago" (hostCertTtl 30d): due for renewal, as the sync test below needs.
    offset = -20 * DAY;
    const file = tokenFile(hostToken(['--target', 'hc', '--host', HOST]));
    const r = await enrolSetup(host, file);
    offset = 0;
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const cert = join(host.root, 'etc/ssh/ssh_host_ed25519_key-cert.pub');
    const info = sshKeygen(['-L', '-f', cert]);
    expect(info).toMatch(/Type: .* host certificate/);
    expect(info).toMatch(new RegExp(`Principals: \\n\\s+${HOST.replace(/\./g, '\\.')}\\n\\s+Critical`));
    expect(readFileSync(host.sshdConfig, 'utf8')).toContain(`HostCertificate ${cert}\n`);
    expect(r.stdout).toContain(`host certificates for 1 key(s): ${HOST}`);

    // The same token again: refused by the CA, and this host's sshd_config is left alone.
    const before = readFileSync(rogue.sshdConfig, 'utf8');
    const again = await enrolSetup(rogue, file);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/enrolment token is unknown or already used|host config needs a host token/);
    expect(readFileSync(rogue.sshdConfig, 'utf8')).toBe(before);

    sshd = await startSshd({ configFile: host.sshdConfig, user: 'root' });
  });

  it('ok/after jit-ssh login, ssh with StrictHostKeyChecking=yes and its known_hosts connects without a prompt; an empty known_hosts fails', async () => {
    const login = await cli(['login', 'hc', '--task', 'hc-shell', '--no-agent', '--json']);
    expect(login.code, login.stderr).toBe(0);
    const knownHosts = join(home, '.ssh/jit/known_hosts');
    const kh = readFileSync(knownHosts, 'utf8');
    const line = kh.split('\n').find((l) => l.startsWith('@cert-authority '))!;
    expect(line).toContain(',db1.hc.test,[db1.hc.test]:*,db2.hc.test,[db2.hc.test]:* ssh-ed25519 ');
    const hostCa = (await (await fetch(`${d.url}/v1/ca?type=host`)).text()).split(' ')[1];
    expect(line.split(' ')[3]).toBe(hostCa);
    // The printed command uses it strictly.
    const printed = JSON.parse(login.stdout).sshCommand as string[];
    expect(printed).toEqual(expect.arrayContaining([`UserKnownHostsFile=${knownHosts}`, 'StrictHostKeyChecking=yes']));

    const ok = await sshTo(sshd.port, knownHosts);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^reached-/);
    expect(ok.stderr).not.toMatch(/authenticity|Warning: Permanently added/);

    const empty = join(home, 'empty_known_hosts');
    writeFileSync(empty, '');
    const refused = await sshTo(sshd.port, empty);
    expect(refused.code).toBe(255);
    expect(refused.stderr).toMatch(/Host key verification failed|No .* host key is known/);

    // A name the certificate does not carry (the token allowed only db1): refused too.
    const otherName = await sshTo(sshd.port, knownHosts, 'db2.hc.test');
    expect(otherName.code).toBe(255);
    expect(otherName.stderr).toMatch(/Host key verification failed|[Cc]ertificate/);
  });

  it('fail/a host presenting a host certificate from another CA is refused', async () => {
    const set = await hostSetup(rogue, d.url, 'hc');
    expect(set.code, set.stderr).toBe(0);
    const rogueCa = generateKey(rogue.root, 'rogue-ca', 'ed25519');
    const hostKey = join(rogue.root, 'etc/ssh/ssh_host_ed25519_key');
    sshKeygen(['-s', rogueCa.path, '-h', '-I', 'rogue', '-n', HOST, `${hostKey}.pub`]);
    const cfg = readFileSync(rogue.sshdConfig, 'utf8');
    writeFileSync(rogue.sshdConfig, cfg.replace('# END jit-ssh\n', `HostCertificate ${hostKey}-cert.pub\n# END jit-ssh\n`));
    rogueSshd = await startSshd({ configFile: rogue.sshdConfig, user: 'root' });
    const r = await sshTo(rogueSshd.port, join(home, '.ssh/jit/known_hosts'));
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Host key verification failed/);
    expect(r.stdout).toBe('');
  });

  it('ok/the sync timer renews a host certificate with less than a third left; a refused renewal keeps the current one', async () => {
    const certPath = join(host.root, 'etc/ssh/ssh_host_ed25519_key-cert.pub');
    const original = readFileSync(certPath, 'utf8');

    // Another key signs the renewal (the cert stays the same): refused, the certificate stays.
    const fake = mkdtempSync(join(tmpdir(), 'jit-hc-fake-'));
    try {
      const other = generateKey(fake, 'ssh_host_ed25519_key', 'ed25519');
      copyFileSync(certPath, `${other.path}-cert.pub`);
      const conf = readFileSync(host.syncConf, 'utf8').replace(/^HOST_KEYS=.*$/m, `HOST_KEYS=${other.path}`);
      writeFileSync(join(fake, 'sync.conf'), conf);
      const refused = await run(host.syncBin, ['--config', join(fake, 'sync.conf')]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/host certificate renewal refused by .*not by the certified host key.*keeping the current certificates/);
      expect(readFileSync(`${other.path}-cert.pub`, 'utf8')).toBe(original);
    } finally {
      rmSync(fake, { recursive: true, force: true });
    }

    const r = await hostSync(host);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/renewed host certificate/);
    const renewed = readFileSync(certPath, 'utf8');
    expect(renewed).not.toBe(original);
    const info = sshKeygen(['-L', '-f', certPath]);
    expect(info).toMatch(/Type: .* host certificate/);
    expect(info).toContain(HOST);
    // Not due any more: the next run leaves it alone.
    const again = await hostSync(host);
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(certPath, 'utf8')).toBe(renewed);
    const audit = readFileSync(join(env.dataDir, 'audit.jsonl'), 'utf8');
    expect(audit).toMatch(/"type":"host_renew"/);
    expect(audit).toMatch(/"type":"host_renew_refused"/);
  });

  it('ok/ssh -F <jit-ssh config output> after the user certificate expired logs in again by itself and connects', async () => {
    // A certificate that is already expired by the real clock.
    offset = -2 * 3_600_000;
    const old = await cli(['login', 'hc', '--task', 'hc-shell', '--no-agent']);
    offset = 0;
    expect(old.code, old.stderr).toBe(0);
    const until = Number(readFileSync(join(home, '.ssh/jit/hc.valid-until'), 'utf8'));
    expect(until * 1000).toBeLessThan(Date.now());
    const stale = await sshTo(sshd.port, join(home, '.ssh/jit/known_hosts'));
    expect(stale.code).toBe(255); // sshd refuses the expired certificate

    const c = await cli(['config']);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toMatch(/^Match originalhost db1\.hc\.test,db2\.hc\.test exec "/m);
    expect(c.stdout).toContain('  User root');
    expect(c.stdout).toContain('  StrictHostKeyChecking yes');
    const cfgFile = join(home, 'ssh_config');
    writeFileSync(cfgFile, c.stdout);

    const r = await run(ssh, ['-F', cfgFile, '-o', 'BatchMode=yes', '-o', 'IdentityAgent=none', '-o', 'HostName=127.0.0.1', '-p', String(sshd.port), '-o', `HostKeyAlias=${HOST}`, HOST, 'echo via-config'], {
      env: baseEnv(home, { JITSSH_IDENTITY: env.keys.alice.path }),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('via-config');
    expect(Number(readFileSync(join(home, '.ssh/jit/hc.valid-until'), 'utf8')) * 1000).toBeGreaterThan(Date.now());

    // With a valid certificate the helper answers from the shell alone (no login, no node).
    const helper = join(home, '.ssh/jit/jit-ssh-ensure');
    const started = process.hrtime.bigint();
    const fast = await run('/bin/sh', [helper, 'hc'], { env: { PATH: '/nonexistent' + ':/usr/bin:/bin', HOME: home } });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    expect(fast.code).toBe(0);
    expect(fast.stderr).toBe('');
    console.log(`jit-ssh-ensure with a valid certificate: ${ms.toFixed(1)} ms`);
  });
});
