/**
 * End to end, with the real OpenSSH as the judge: a jit-sshd from the repo, two hosts (targets
 * e2e-a and e2e-b) configured ONLY by scripts/host-setup.sh --root, each with its own private
 * sshd on loopback, and the real ssh client. Every refusal is checked in sshd's own log, so a
 * test cannot pass because ssh failed for an unrelated reason.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { api, login, REPO, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { sshKeygen } from '../helpers/keys.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import { describeWithTools } from '../helpers/tools.js';
import { hostSetup, hostSync, makeHostRoot, run, sha256File, type TestHost } from './helpers/hosts.js';
import { issueCert, makeE2eEnv, type IssuedCert } from './helpers/policy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const JIT_SSHD = join(REPO, 'dist/cli/jit-sshd.js');
const JIT_SSH = join(REPO, 'dist/cli/jit-ssh.js');

describeWithTools(['sshd', 'ssh', 'ssh-keygen', 'curl'], 'e2e: hosts configured by host-setup.sh enforce jit-ssh certificates', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let token: string;
  let hostA: TestHost;
  let hostB: TestHost;
  let sshdA: Sshd;
  let sshdB: Sshd;
  const servers: Server[] = [];

  const admin = (...args: string[]) => run(process.execPath, [JIT_SSHD, ...args, '--config', env.configPath]);
  /** The engineer's command as alice would run it: her key file, no agent, files in `out`. */
  const jitSsh = (out: string, ...args: string[]) => {
    const { SSH_AUTH_SOCK: _sock, ...rest } = process.env;
    return run(process.execPath, [JIT_SSH, ...args, '--server', d.url, '--user', 'alice', '--identity', env.keys.alice.path, '--out', out, '--json'], {
      env: { ...rest, HOME: env.dir },
    });
  };
  /** `jit-ssh login` into a fresh dir; the certificate as the other cases see it. */
  async function cliLogin(target: string, task: string): Promise<IssuedCert & { out: string }> {
    const out = mkdtempSync(join(env.dir, 'jit-'));
    const r = await jitSsh(out, 'login', target, '--task', task, '--no-agent');
    if (r.code !== 0) throw new Error(`jit-ssh login: ${r.code} ${r.stderr}`);
    const j = JSON.parse(r.stdout);
    return { id: j.id, serial: String(j.serial), keyId: j.keyId, key: j.keyFile, cert: j.certFile, validBefore: Date.parse(j.validBefore), out };
  }
  /** The fingerprint of the CA key that signed a certificate, as ssh-keygen -L shows it. */
  const signingCa = (cert: string) => /Signing CA: \S+ (SHA256:\S+)/.exec(sshKeygen(['-L', '-f', cert]))![1];
  const esc = (t: string) => t.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  /** sshd's refusal of a certificate whose CA it does not trust (VERBOSE names no reason, only the CA). */
  const untrustedCa = (c: IssuedCert, fp: string) =>
    new RegExp(`Failed publickey for root from 127\\.0\\.0\\.1 .*ID ${esc(c.keyId)} \\(serial ${c.serial}\\) CA ED25519 ${esc(fp)}`);
  /** Log text written after `mark` (sshd logs accumulate across tests). */
  const since = (s: Sshd, mark: number) => s.logs().slice(mark);
  async function refused(s: Sshd, c: IssuedCert, why: RegExp): Promise<void> {
    const mark = s.logs().length;
    const r = await s.runSsh(c.key, c.cert, 'echo should-not-run');
    expect(r.stdout).not.toContain('should-not-run');
    expect(r.code).toBe(255);
    // sshd may log just after ssh exits: poll the part of the log this attempt wrote.
    for (let i = 0; i < 100 && !why.test(since(s, mark)); i++) await sleep(25);
    expect(since(s, mark)).toMatch(why);
    expect(since(s, mark)).not.toMatch(/Accepted publickey/);
  }
  async function accepted(s: Sshd, c: IssuedCert): Promise<void> {
    const r = await s.runSsh(c.key, c.cert, 'echo jit-ok');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('jit-ok\n');
    expect(r.code).toBe(0);
  }

  beforeAll(async () => {
    env = makeE2eEnv();
    d = await startTestDaemon(env);
    token = await login(d.url, 'alice', env.keys.alice);
    hostA = makeHostRoot('a');
    hostB = makeHostRoot('b');
    for (const [h, target] of [
      [hostA, 'e2e-a'],
      [hostB, 'e2e-b'],
    ] as const) {
      const r = await hostSetup(h, d.url, target);
      if (r.code !== 0) throw new Error(`host-setup.sh for ${target} failed:\n${r.stdout}\n${r.stderr}`);
    }
    sshdA = await startSshd({ configFile: hostA.sshdConfig, user: 'root' });
    sshdB = await startSshd({ configFile: hostB.sshdConfig, user: 'root' });
  });

  afterAll(async () => {
    await sshdA?.stop();
    await sshdB?.stop();
    for (const s of servers) s.close();
    await d?.close();
    hostA?.cleanup();
    hostB?.cleanup();
    env?.cleanup();
  });

  it('ok/host-setup wrote the files sshd uses, with safe modes, and only principals of its own target', () => {
    const principals = join(hostA.etc, 'principals/root');
    expect(readFileSync(principals, 'utf8')).toBe('root@e2e-a\n');
    expect(readFileSync(join(hostB.etc, 'principals/root'), 'utf8')).toBe('root@e2e-b\n');
    for (const [p, mode] of [
      [hostA.etc, 0o755],
      [join(hostA.etc, 'principals'), 0o755],
      [principals, 0o644],
      [join(hostA.etc, 'ca.pub'), 0o644],
      [join(hostA.etc, 'revoked.krl'), 0o644],
    ] as const) {
      const st = statSync(p);
      expect({ p, mode: st.mode & 0o7777, uid: st.uid }).toEqual({ p, mode, uid: 0 });
    }
    expect(sshKeygen(['-Q', '-l', '-f', join(hostA.etc, 'revoked.krl')])).toMatch(/# KRL version \d+/);
    expect(readFileSync(join(hostA.etc, 'ca.pub'), 'utf8')).toBe(d.deps.ca.publicLines().join('\n') + '\n');
  });

  it('case 1: `jit-ssh login` (auto rule) then ssh runs a command; sshd logs our key ID and serial', async () => {
    const c = await cliLogin('e2e-a', 'e2e-shell');
    expect(c.key).toBe(join(c.out, 'e2e-a'));
    expect(statSync(c.key).mode & 0o777).toBe(0o600);
    const mark = sshdA.logs().length;
    const r = await sshdA.runSsh(c.key, c.cert, 'id -un; echo jit-ok');
    expect(r.stdout).toBe('root\njit-ok\n');
    expect(r.code).toBe(0);
    const accept = new RegExp(`Accepted publickey for root from 127\\.0\\.0\\.1 .*ID ${esc(c.keyId)} \\(serial ${c.serial}\\) CA`);
    await sshdA.waitForLog(accept);
    expect(since(sshdA, mark)).toMatch(accept);
    expect(c.keyId).toMatch(/^jit-ssh:[^:]+:alice:e2e-shell$/);
  });

  it('case 2: a certificate for target e2e-a is refused by the host of e2e-b (principal scoping)', async () => {
    const forA = await issueCert(d.url, env, token, 'e2e-a', 'e2e-shell');
    await refused(sshdB, forA, /Certificate does not contain an authorized principal/);
    // The same host accepts its own target's certificate: the refusal was the principal.
    await accepted(sshdB, await issueCert(d.url, env, token, 'e2e-b', 'e2e-shell'));
  });

  it("case 3: a short-ttl certificate works, then sshd's own clock refuses it after expiry", async () => {
    const c = await issueCert(d.url, env, token, 'e2e-a', 'e2e-short', '4s');
    await accepted(sshdA, c);
    const wait = c.validBefore - Date.now() + 1200;
    expect(wait).toBeLessThan(6000);
    await sleep(Math.max(0, wait));
    await refused(sshdA, c, /[Cc]ertificate invalid: expired/);
  });

  it('case 4: source-address bound to the requester (127.0.0.1) works; bound to 10.9.9.0/24 is refused', async () => {
    const bound = await issueCert(d.url, env, token, 'e2e-a', 'e2e-shell');
    expect(sshKeygen(['-L', '-f', bound.cert])).toMatch(/source-address 127\.0\.0\.1\/32/);
    await accepted(sshdA, bound);
    const elsewhere = await issueCert(d.url, env, token, 'e2e-a', 'e2e-elsewhere');
    expect(sshKeygen(['-L', '-f', elsewhere.cert])).toMatch(/source-address 10\.9\.9\.0\/24/);
    await refused(sshdA, elsewhere, /not from a permitted source address/);
  });

  it("case 5: the task's force-command runs instead of the requested command", async () => {
    const c = await issueCert(d.url, env, token, 'e2e-a', 'e2e-force');
    const r = await sshdA.runSsh(c.key, c.cert, 'echo requested-command');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('forced-by-policy\n');
  });

  it('case 6: `jit-ssh done` → krl-sync → the certificate is refused; another certificate still works', async () => {
    const doomed = await cliLogin('e2e-a', 'e2e-shell');
    const other = await cliLogin('e2e-a', 'e2e-shell');
    await accepted(sshdA, doomed);
    // Someone kept a copy: `done` deletes the files, but only the KRL makes the copy useless.
    const keep = { ...doomed, key: join(env.dir, 'kept'), cert: join(env.dir, 'kept-cert.pub') };
    copyFileSync(doomed.key, keep.key);
    copyFileSync(doomed.cert, keep.cert);
    const dn = await jitSsh(doomed.out, 'done', 'e2e-a');
    expect(dn.code, dn.stderr).toBe(0);
    expect(JSON.parse(dn.stdout)).toMatchObject({ id: doomed.id, server: 'revoked', filesRemoved: true });
    expect(existsSync(doomed.key)).toBe(false);
    const viewed = await api(d.url, 'GET', `/v1/requests/${doomed.id}`, undefined, token);
    expect(viewed.body.status).toBe('revoked');
    Object.assign(doomed, keep);
    // The host enforces what its KRL says: until the sync, the old KRL still lets it in.
    await accepted(sshdA, doomed);
    const sync = await hostSync(hostA);
    expect(sync.code, sync.stderr).toBe(0);
    expect(sync.stderr).toMatch(/installed KRL version/);
    const q = await run('ssh-keygen', ['-Q', '-f', join(hostA.etc, 'revoked.krl'), doomed.cert]);
    expect(q.stdout + q.stderr).toMatch(/REVOKED/);
    await refused(sshdA, doomed, /revoked/);
    await accepted(sshdA, other);
    // Nothing changed since: the next sync is a cheap 304 and rewrites nothing.
    const before = statSync(join(hostA.etc, 'revoked.krl')).mtimeMs;
    const again = await hostSync(hostA);
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/KRL unchanged/);
    expect(statSync(join(hostA.etc, 'revoked.krl')).mtimeMs).toBe(before);
  });

  it('case 7: CA rotation: old and new certificates both accepted while both keys are trusted; after retire the old one is refused', async () => {
    const oldFp = d.deps.ca.active().fingerprint;
    const oldCert = await issueCert(d.url, env, token, 'e2e-a', 'e2e-shell');
    expect(signingCa(oldCert.cert)).toBe(oldFp);

    const rot = await admin('ca', 'rotate');
    expect(rot.code, rot.stderr).toBe(0);
    const caLines = (await api(d.url, 'GET', '/v1/ca')).body as string;
    expect(caLines.trim().split('\n')).toHaveLength(2);
    const newCert = await issueCert(d.url, env, token, 'e2e-a', 'e2e-shell');
    const newFp = signingCa(newCert.cert);
    expect(newFp).not.toBe(oldFp);

    // Before the host syncs it does not know the new key.
    await refused(sshdA, newCert, untrustedCa(newCert, newFp));
    const sync = await hostSync(hostA);
    expect(sync.code, sync.stderr).toBe(0);
    expect(sync.stderr).toMatch(/installed 2 CA key\(s\)/);
    await accepted(sshdA, oldCert);
    await accepted(sshdA, newCert);

    // Retiring the old key is refused while a certificate it signed is still valid...
    const early = await admin('ca', 'retire', oldFp);
    expect(early.code).not.toBe(0);
    expect(early.stderr).toMatch(/valid until/);
    // ...and forced here, so the test can show the host stop trusting a still-valid old certificate.
    const retire = await admin('ca', 'retire', oldFp, '--force');
    expect(retire.code, retire.stderr).toBe(0);
    expect(((await api(d.url, 'GET', '/v1/ca')).body as string).trim().split('\n')).toHaveLength(1);
    const sync2 = await hostSync(hostA);
    expect(sync2.code, sync2.stderr).toBe(0);
    expect(sync2.stderr).toMatch(/installed 1 CA key\(s\)/);
    await refused(sshdA, oldCert, untrustedCa(oldCert, oldFp));
    await accepted(sshdA, newCert);
  });

  it('case 8: krl-sync keeps the last good KRL when the CA is down, answers garbage or an empty body', async () => {
    const krl = join(hostA.etc, 'revoked.krl');
    const good = sha256File(krl);
    // A port nothing listens on: the CA is down.
    const dead = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const port = (s.address() as AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const down = await hostSync(hostA, ['--server', `http://127.0.0.1:${dead}`]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/ERROR: cannot reach .*keeping the last good KRL/);
    expect(sha256File(krl)).toBe(good);

    // A CA that answers 200 with a corrupt KRL, or with nothing at all.
    let body = Buffer.from('SSHKRL\n\0garbage that is not a KRL');
    const fake = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', etag: '"fake"' });
      res.end(body);
    });
    servers.push(fake);
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', () => r()));
    const fakeUrl = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
    const corrupt = await hostSync(hostA, ['--server', fakeUrl]);
    expect(corrupt.code).toBe(1);
    expect(corrupt.stderr).toMatch(/not a valid KRL/);
    expect(sha256File(krl)).toBe(good);
    body = Buffer.alloc(0);
    const empty = await hostSync(hostA, ['--server', fakeUrl]);
    expect(empty.code).toBe(1);
    expect(empty.stderr).toMatch(/empty body/);
    expect(sha256File(krl)).toBe(good);
    expect(readFileSync(join(hostA.root, 'var/lib/jit-ssh/krl.etag'), 'utf8')).not.toContain('fake');

    // Still down long after the last success: loud, and a distinct exit code for monitoring.
    writeFileSync(join(hostA.root, 'var/lib/jit-ssh/last-success'), `${Math.floor(Date.now() / 1000) - 7200}\n`);
    const stale = await hostSync(hostA, ['--server', `http://127.0.0.1:${dead}`, '--max-age', '600']);
    expect(stale.code).toBe(2);
    expect(stale.stderr).toMatch(/ERROR: KRL .* is STALE: last successful sync 7\d{3}s ago \(max 600s\)/);
    expect(sha256File(krl)).toBe(good);
    expect(existsSync(krl)).toBe(true);

    // The real CA brings the host back to fresh.
    const back = await hostSync(hostA);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stderr).not.toMatch(/STALE/);
  });
});
