/**
 * Host enrolment and renewal over the real HTTP API: tokens are single use, expire, are bound to
 * their target and stored only as hashes; principals come from the policy, never the request;
 * bad host keys are 400 naming the problem; renewals need the certified key's own signature;
 * every outcome is an audit record. Certificates are read back with the real ssh-keygen.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { WireWriter } from '../../src/ca/wire.js';
import { createHostToken, hostTokenDir } from '../../src/store/host-tokens.js';
import { api, makeEnv, REPO, sshKeygenSign, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { generateKey, sshKeygen } from '../helpers/keys.js';
import { describeWithTools } from '../helpers/tools.js';
import { manualClock, MIN } from './support.js';

const DAY = 86_400_000;

describeWithTools(['ssh-keygen'], 'service: host enrolment and renewal', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  const clock = manualClock(Date.now());
  let n = 0;
  const hostKey = (type: 'ed25519' | 'ecdsa256' | 'rsa3072' | 'rsa2048' = 'ed25519') => generateKey(env.dir, `host-${++n}`, type);
  const token = (target = 'web', host?: string, ttlSeconds = 3600) =>
    createHostToken(env.dataDir, { target, host, ttlSeconds, now: new Date(clock.now()) }).token;
  const enroll = (body: unknown, format = '') => api(d.url, 'POST', `/v1/hosts/enroll${format}`, body);
  const audit = () =>
    readFileSync(join(env.dataDir, 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const lastAudit = (type: string) => audit().filter((r) => r.type === type).at(-1);
  /** ssh-keygen -L of a certificate line. */
  const inspect = (line: string) => {
    const f = join(env.dir, `inspect-${++n}-cert.pub`);
    writeFileSync(f, line + '\n');
    return sshKeygen(['-L', '-f', f]);
  };

  beforeAll(async () => {
    env = makeEnv({
      targets: `  web: { hosts: [web1.example.test, web2.example.test], accounts: [root] }
  db: { hosts: [db1.example.test], accounts: [root] }
`,
    });
    d = await startTestDaemon(env, { clock });
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  it('ok/enrol: host certificates for every key, principals = the target’s literal names, hostCertTtl 30d', async () => {
    const keys = [hostKey('ed25519'), hostKey('ecdsa256'), hostKey('rsa3072')];
    const r = await enroll({ token: token(), target: 'web', publicKeys: keys.map((k) => k.publicLine) });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.principals).toEqual(['web1.example.test', 'web2.example.test']);
    expect(r.body.certificates).toHaveLength(3);
    const hostCa = (await api(d.url, 'GET', '/v1/ca?type=host')).body as string;
    const userCa = (await api(d.url, 'GET', '/v1/ca')).body as string;
    expect(hostCa).not.toBe(userCa); // a separate key
    writeFileSync(join(env.dir, 'host-ca.pub'), hostCa);
    const hostCaFp = sshKeygen(['-l', '-f', join(env.dir, 'host-ca.pub')]).split(' ')[1];
    for (const [i, c] of (r.body.certificates as { certificate: string; validBefore: string }[]).entries()) {
      const info = inspect(c.certificate);
      expect(info).toMatch(/Type: .* host certificate/);
      expect(info).toContain(hostCaFp);
      expect(info).toMatch(/Principals: \n\s+web1\.example\.test\n\s+web2\.example\.test\n/);
      expect(info).toContain(sshKeygen(['-l', '-f', `${keys[i].path}.pub`]).split(' ')[1]);
      expect(Date.parse(c.validBefore) - clock.now()).toBeGreaterThan(30 * DAY - MIN);
      expect(Date.parse(c.validBefore) - clock.now()).toBeLessThanOrEqual(30 * DAY);
    }
    const rec = lastAudit('host_enroll')!;
    expect(rec.target).toBe('web');
    expect((rec.certificates as unknown[]).length).toBe(3);
  });

  it('ok/format=plain: one certificate line per key, in request order', async () => {
    const keys = [hostKey('ecdsa256'), hostKey('ed25519')];
    const r = await enroll({ token: token('web', 'web2.example.test'), target: 'web', publicKeys: keys.map((k) => k.publicLine) }, '?format=plain');
    expect(r.status).toBe(200);
    const lines = (r.body as string).trim().split('\n');
    expect(lines.map((l) => l.split(' ')[0])).toEqual(['ecdsa-sha2-nistp256-cert-v01@openssh.com', 'ssh-ed25519-cert-v01@openssh.com']);
    // --host narrows the names to that one
    expect(inspect(lines[0])).toMatch(/Principals: \n\s+web2\.example\.test\n\s+Critical/);
  });

  it('ok/tokens are stored only as hashes; a token file never contains the token', async () => {
    const t = token('db');
    for (const f of readdirSync(hostTokenDir(env.dataDir))) {
      expect(readFileSync(join(hostTokenDir(env.dataDir), f), 'utf8')).not.toContain(t.slice(4));
    }
  });

  it('fail/a used token: 401, no certificate, audit record', async () => {
    const t = token();
    const body = { token: t, target: 'web', publicKeys: [hostKey().publicLine] };
    expect((await enroll(body)).status).toBe(200);
    const again = await enroll({ ...body, publicKeys: [hostKey().publicLine] });
    expect(again.status).toBe(401);
    expect(again.body.error.message).toMatch(/unknown or already used/);
    expect(again.body.certificates).toBeUndefined();
    expect(lastAudit('host_enroll_refused')).toMatchObject({ why: 'unknown_or_used', target: 'web' });
  });

  it('fail/concurrent use of one token: exactly one enrolment succeeds', async () => {
    const t = token();
    const all = await Promise.all(Array.from({ length: 8 }, () => enroll({ token: t, target: 'web', publicKeys: [hostKey().publicLine] })));
    expect(all.filter((r) => r.status === 200)).toHaveLength(1);
    expect(all.filter((r) => r.status === 401)).toHaveLength(7);
  });

  it('fail/an expired token: 401 and an audit record', async () => {
    const t = token('web', undefined, 60);
    clock.advance(2 * MIN);
    const r = await enroll({ token: t, target: 'web', publicKeys: [hostKey().publicLine] });
    expect(r.status).toBe(401);
    expect(r.body.error.message).toMatch(/expired/);
    expect(lastAudit('host_enroll_refused')).toMatchObject({ why: 'expired' });
  });

  it('fail/a forged token and a token for another target: 401 / 403, audited', async () => {
    const forged = await enroll({ token: 'jht_' + 'A'.repeat(43), target: 'web', publicKeys: [hostKey().publicLine] });
    expect(forged.status).toBe(401);
    const garbage = await enroll({ token: 'not-a-token', target: 'web', publicKeys: [hostKey().publicLine] });
    expect(garbage.status).toBe(401);
    const wrong = await enroll({ token: token('db'), target: 'web', publicKeys: [hostKey().publicLine] });
    expect(wrong.status).toBe(403);
    expect(wrong.body.error.message).toMatch(/another target/);
    expect(lastAudit('host_enroll_refused')).toMatchObject({ why: 'wrong_target', target: 'web' });
  });

  it('fail/a token for a name the target does not list: 403, never a claimed name', async () => {
    const other = await enroll({ token: token('web', 'db1.example.test'), target: 'web', publicKeys: [hostKey().publicLine] });
    expect(other.status).toBe(403);
    expect(other.body.error.message).toMatch(/db1\.example\.test is not a literal host name of target web/);
    // The request cannot name principals at all.
    const claim = await enroll({ token: token(), target: 'web', publicKeys: [hostKey().publicLine], principals: ['db1.example.test'] });
    expect(claim.status).toBe(400);
    expect(claim.body.error.message).toMatch(/principals/);
  });

  it('fail/bad host keys: 400 naming the problem, and the token is not used up', async () => {
    const t = token();
    const good = hostKey().publicLine;
    const dsaBlob = new WireWriter().string('ssh-dss').mpint(Buffer.from([0x7f, 1])).mpint(Buffer.of(3)).mpint(Buffer.of(2)).mpint(Buffer.of(5)).toBuffer();
    const hostCaLine = ((await api(d.url, 'GET', '/v1/ca?type=host')).body as string).trim().split('\n')[0];
    const userCaLine = ((await api(d.url, 'GET', '/v1/ca')).body as string).trim().split('\n')[0];
    const cases: [string[], RegExp][] = [
      [['not a key'], /publicKeys\[0\]/],
      [[good, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB'], /publicKeys\[1\]/],
      [[`ssh-dss ${dsaBlob.toString('base64')}`], /publicKeys\[0\].*(dss|type)/i],
      [[good, good], /publicKeys\[1\]: duplicate/],
      [[hostCaLine], /publicKeys\[0\]: .*CA key/],
      [[userCaLine], /publicKeys\[0\]: .*CA key/],
      [[hostKey('rsa2048').publicLine], /publicKeys\[0\]: RSA key of 2048 bits/],
      [[], /publicKeys/],
    ];
    for (const [publicKeys, message] of cases) {
      const r = await enroll({ token: t, target: 'web', publicKeys });
      expect(r.status, JSON.stringify(publicKeys).slice(0, 80)).toBe(400);
      expect(r.body.error.message).toMatch(message);
    }
    expect((await enroll({ token: t, target: 'web', publicKeys: [good] })).status).toBe(200);
  });

  describe('renewal', () => {
    let key: ReturnType<typeof hostKey>;
    let cert: string;
    const challenge = async () => (await api(d.url, 'POST', '/v1/hosts/challenge', {})).body.challenge as string;
    const sign = (path: string, message: string) => sshKeygenSign(path, message, 'jit-ssh-host');

    beforeAll(async () => {
      key = hostKey();
      const r = await enroll({ token: token('web', 'web1.example.test'), target: 'web', publicKeys: [key.publicLine] });
      cert = r.body.certificates[0].certificate;
    });

    it('ok/a signature by the certified host key over a fresh challenge renews; same names, new serial', async () => {
      clock.advance(21 * DAY);
      const c = await challenge();
      const r = await api(d.url, 'POST', '/v1/hosts/renew', { challenge: c, renewals: [{ certificate: cert, signature: sign(key.path, c) }] });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect(r.body.principals).toEqual(['web1.example.test']);
      const renewed = r.body.certificates[0];
      expect(renewed.certificate).not.toBe(cert);
      expect(Date.parse(renewed.validBefore) - clock.now()).toBeGreaterThan(29 * DAY);
      expect(inspect(renewed.certificate)).toMatch(/Type: .* host certificate/);
      expect(lastAudit('host_renew')).toMatchObject({ target: 'web', principals: ['web1.example.test'] });
      // The challenge is single use.
      const replay = await api(d.url, 'POST', '/v1/hosts/renew', { challenge: c, renewals: [{ certificate: cert, signature: sign(key.path, c) }] });
      expect(replay.status).toBe(401);
      cert = renewed.certificate;
    });

    it('fail/a renewal signed by another key: 401, audited', async () => {
      const c = await challenge();
      const r = await api(d.url, 'POST', '/v1/hosts/renew', { challenge: c, renewals: [{ certificate: cert, signature: sign(hostKey().path, c) }] });
      expect(r.status).toBe(401);
      expect(r.body.error.message).toMatch(/not by the certified host key/);
      expect(lastAudit('host_renew_refused')).toBeDefined();
    });

    it('fail/a signature in the user-login namespace, a user certificate, an expired host certificate: 401', async () => {
      let c = await challenge();
      const wrongNs = await api(d.url, 'POST', '/v1/hosts/renew', { challenge: c, renewals: [{ certificate: cert, signature: sshKeygenSign(key.path, c) }] });
      expect(wrongNs.status).toBe(401);
      // A self-made host certificate from another CA
      const rogueCa = hostKey();
      sshKeygen(['-s', rogueCa.path, '-h', '-I', 'jit-ssh-host:web:ht_000000000000', '-n', 'web1.example.test', `${key.path}.pub`]);
      const rogue = readFileSync(`${key.path}-cert.pub`, 'utf8').trim();
      c = await challenge();
      const r = await api(d.url, 'POST', '/v1/hosts/renew', { challenge: c, renewals: [{ certificate: rogue, signature: sign(key.path, c) }] });
      expect(r.status).toBe(401);
      expect(r.body.error.message).toMatch(/not a host certificate of this CA/);
      clock.advance(31 * DAY);
      c = await challenge();
      const expired = await api(d.url, 'POST', '/v1/hosts/renew', { challenge: c, renewals: [{ certificate: cert, signature: sign(key.path, c) }] });
      expect(expired.status).toBe(401);
      expect(expired.body.error.message).toMatch(/not valid now/);
    });
  });

  it('ok/jit-sshd host token prints only the token on stdout and refuses names the target does not list', () => {
    const cli = join(REPO, 'dist/cli/jit-sshd.js');
    const out = execFileSync(process.execPath, [cli, 'host', 'token', '--config', env.configPath, '--target', 'web', '--ttl', '10m'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out.trim()).toMatch(/^jht_[A-Za-z0-9_-]{43}$/);
    let err = '';
    try {
      execFileSync(process.execPath, [cli, 'host', 'token', '--config', env.configPath, '--target', 'web', '--host', 'db1.example.test'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      err = String((e as { stderr: string }).stderr);
    }
    expect(err).toMatch(/--host: db1\.example\.test is not one of the literal host names of web/);
  });

  it('ok/ca show/rotate/retire --type host work on the host CA only, beside the running daemon', async () => {
    const cli = join(REPO, 'dist/cli/jit-sshd.js');
    const admin = (args: string[]) => {
      try {
        return { code: 0, out: execFileSync(process.execPath, [cli, ...args, '--config', env.configPath], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
      } catch (e) {
        return { code: (e as { status: number }).status, out: String((e as { stderr: string }).stderr) };
      }
    };
    const userBefore = admin(['ca', 'show']).out;
    const hostBefore = admin(['ca', 'show', '--type', 'host']).out;
    expect(hostBefore.trim()).toBe(((await api(d.url, 'GET', '/v1/ca?type=host')).body as string).trim());
    expect(hostBefore).not.toBe(userBefore);
    writeFileSync(join(env.dir, 'host-ca-before.pub'), hostBefore);
    const oldFp = sshKeygen(['-l', '-f', join(env.dir, 'host-ca-before.pub')]).split(' ')[1];
    expect(admin(['ca', 'rotate', '--type', 'host']).code).toBe(0);
    expect(admin(['ca', 'show']).out).toBe(userBefore);
    // The daemon picks the rotation up at once: two host CA lines, new certificates from the new key.
    expect(((await api(d.url, 'GET', '/v1/ca?type=host')).body as string).trim().split('\n')).toHaveLength(2);
    // Host certificates signed by the old key are still valid: retiring it is refused.
    const refused = admin(['ca', 'retire', '--type', 'host', oldFp]);
    expect(refused.code).not.toBe(0);
    expect(refused.out).toMatch(/valid until/);
  });

  it('fail/GET /v1/ca?type=bogus: 400', async () => {
    const r = await api(d.url, 'GET', '/v1/ca?type=bogus');
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/type: must be user or host/);
  });
});
