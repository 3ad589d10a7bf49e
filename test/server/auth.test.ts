/** SSH-key challenge login and bearer tokens, with signatures from the real ssh-keygen -Y sign. */
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../../src/daemon.js';
import type { SecretSource } from '../../src/auth/secret.js';
import { api, login, makeEnv, sshKeygenSign, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { generateKey } from '../helpers/keys.js';
import { describeWithTools } from '../helpers/tools.js';

const AUTOMATION_TOKEN = 'ci-secret-token-0123456789abcdef';

describeWithTools(['ssh-keygen'], 'authentication', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let now = Date.now();
  const clock = { now: () => now };

  beforeAll(async () => {
    const sha = createHash('sha256').update(AUTOMATION_TOKEN).digest('hex');
    env = makeEnv({ tokens: `{ name: ci, user: alice, sha256: "${sha}" }` });
    d = await startTestDaemon(env, { clock });
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  const challenge = async (user: string) => (await api(d.url, 'POST', '/v1/auth/challenge', { user })).body.challenge as string;

  it('ok/a signature by a registered key yields a bearer token that authenticates', async () => {
    const token = await login(d.url, 'alice', env.keys.alice);
    expect(token).toMatch(/^jit_[A-Za-z0-9_-]{43}$/);
    const t = await api(d.url, 'GET', '/v1/targets', undefined, token);
    expect(t.status).toBe(200);
  });

  it('fail/a replayed challenge is refused (single use)', async () => {
    const c = await challenge('alice');
    const signature = sshKeygenSign(env.keys.alice.path, c);
    expect((await api(d.url, 'POST', '/v1/auth/token', { user: 'alice', challenge: c, signature })).status).toBe(200);
    const again = await api(d.url, 'POST', '/v1/auth/token', { user: 'alice', challenge: c, signature });
    expect(again.status).toBe(401);
    expect(again.body.error.code).toBe('unauthenticated');
  });

  it('fail/an expired challenge is refused', async () => {
    const c = await challenge('alice');
    const signature = sshKeygenSign(env.keys.alice.path, c);
    now += 61_000;
    const r = await api(d.url, 'POST', '/v1/auth/token', { user: 'alice', challenge: c, signature });
    expect(r.status).toBe(401);
  });

  it('fail/wrong namespace, other user key, unknown user: all 401 with the same message', async () => {
    const c1 = await challenge('alice');
    const wrongNs = await api(d.url, 'POST', '/v1/auth/token', { user: 'alice', challenge: c1, signature: sshKeygenSign(env.keys.alice.path, c1, 'file') });
    const c2 = await challenge('alice');
    const otherKey = await api(d.url, 'POST', '/v1/auth/token', { user: 'alice', challenge: c2, signature: sshKeygenSign(env.keys.bob.path, c2) });
    const c3 = await challenge('nobody');
    const stranger = generateKey(env.dir, 'stranger', 'ed25519');
    const unknown = await api(d.url, 'POST', '/v1/auth/token', { user: 'nobody', challenge: c3, signature: sshKeygenSign(stranger.path, c3) });
    const c4 = await challenge('alice');
    const forBob = await api(d.url, 'POST', '/v1/auth/token', { user: 'bob', challenge: c4, signature: sshKeygenSign(env.keys.bob.path, c4) });
    for (const r of [wrongNs, otherKey, unknown, forBob]) {
      expect(r.status).toBe(401);
      expect(r.body.error).toEqual({ code: 'unauthenticated', message: 'authentication failed' });
    }
  });

  it('fail/an altered challenge text does not verify', async () => {
    const c = await challenge('alice');
    const signature = sshKeygenSign(env.keys.alice.path, c + 'x');
    expect((await api(d.url, 'POST', '/v1/auth/token', { user: 'alice', challenge: c, signature })).status).toBe(401);
  });

  it('ok/static automation token (stored as sha256) authenticates; a wrong one does not', async () => {
    expect((await api(d.url, 'GET', '/v1/targets', undefined, AUTOMATION_TOKEN)).status).toBe(200);
    expect((await api(d.url, 'GET', '/v1/targets', undefined, AUTOMATION_TOKEN + 'x')).status).toBe(401);
    expect((await api(d.url, 'GET', '/v1/targets')).status).toBe(401);
  });

  it('fail/session tokens expire', async () => {
    const token = await login(d.url, 'alice', env.keys.alice);
    now += 11 * 60_000;
    expect((await api(d.url, 'GET', '/v1/targets', undefined, token)).status).toBe(401);
  });

  it('ok/auth failures and logins are audited without the signature or token', async () => {
    const r = await d.deps.audit.tail(0, 10_000);
    expect(r.some((x) => x.type === 'auth_failure')).toBe(true);
    expect(r.some((x) => x.type === 'auth' && x.user === 'alice')).toBe(true);
    const text = JSON.stringify(r);
    expect(text).not.toContain('BEGIN SSH SIGNATURE');
    expect(text).not.toMatch(/jit_[A-Za-z0-9_-]{43}/);
    expect(text).not.toContain(AUTOMATION_TOKEN);
  });
});

describeWithTools(['ssh-keygen'], 'auth rate limit', () => {
  it('fail/too many challenges from one address → 429 rate_limited', async () => {
    const env = makeEnv({ config: '' });
    // makeEnv sets a huge limit; this test lowers it
    writeFileSync(env.configPath, readFileSync(env.configPath, 'utf8').replace('perMinute: 100000', 'perMinute: 5'));
    const d = await startTestDaemon(env);
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) statuses.push((await api(d.url, 'POST', '/v1/auth/challenge', { user: 'alice' })).status);
      expect(statuses.slice(0, 5).every((s) => s === 200)).toBe(true);
      expect(statuses.slice(5)).toEqual([429, 429, 429]);
      const limited = await api(d.url, 'POST', '/v1/auth/challenge', { user: 'alice' });
      expect(limited.body.error.message).toMatch(/^too many login requests from your address \(limit 5 per minute, rateLimit\.auth\.perMinute\); try again in \d+s$/);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await d.close();
      env.cleanup();
    }
  });
});

describeWithTools(['ssh-keygen'], 'login challenges are bound to the server', () => {
  const startWith = async (env: TestEnv, extra: { dataDir?: string; secret?: SecretSource; publicUrl?: string } = {}) => {
    if (extra.publicUrl) writeFileSync(env.configPath, readFileSync(env.configPath, 'utf8') + `publicUrl: ${extra.publicUrl}\n`);
    return startDaemon({ configPath: env.configPath, dataDir: extra.dataDir, secret: extra.secret, log: pino({ level: 'silent' }) });
  };
  const tokenFor = async (d: RunningDaemon, env: TestEnv, challenge: string) =>
    api(d.url, 'POST', '/v1/auth/token', { user: 'alice', challenge, signature: sshKeygenSign(env.keys.alice.path, challenge) });

  it('ok/the challenge names its server, CA key and user in readable fields, and ssh-keygen signs it as returned', async () => {
    const env = makeEnv();
    const d = await startWith(env);
    try {
      const c = (await api(d.url, 'POST', '/v1/auth/challenge', { user: 'alice' })).body.challenge as string;
      expect(c).toMatch(
        new RegExp(`^jit-ssh-auth/2 server=${d.url.replace(/[.]/g, '\\.')} ca=${d.deps.ca.active().fingerprint.replace(/[+/]/g, '\\$&')} user=alice exp=\\d+ nonce=[A-Za-z0-9_-]{24} mac=[A-Za-z0-9_-]{43}$`),
      );
      expect((await tokenFor(d, env, c)).status).toBe(200);
    } finally {
      await d.close();
      env.cleanup();
    }
  });

  it('fail/a challenge of another server (same secret, other publicUrl) or another CA key is refused', async () => {
    const env = makeEnv();
    const shared: SecretSource = { challengeKey: () => Buffer.alloc(32, 7) }; // replicas share the key
    const a = await startWith(env, { secret: shared, publicUrl: 'https://ca-a.example.com' });
    const envB = makeEnv();
    writeFileSync(envB.policyPath, readFileSync(env.policyPath)); // same users and keys
    const b = await startWith(envB, { secret: shared, publicUrl: 'https://ca-b.example.com' });
    // Same URL and secret, but its own CA key (another data dir).
    const c = await startDaemon({ configPath: env.configPath, dataDir: join(env.dir, 'data-c'), secret: shared, log: pino({ level: 'silent' }) });
    try {
      const fromB = (await api(b.url, 'POST', '/v1/auth/challenge', { user: 'alice' })).body.challenge as string;
      const fromC = (await api(c.url, 'POST', '/v1/auth/challenge', { user: 'alice' })).body.challenge as string;
      expect((await tokenFor(a, env, fromB)).status).toBe(401);
      expect((await tokenFor(a, env, fromC)).status).toBe(401);
      // …while a replica with the same URL, CA key and secret accepts what another issued.
      cpSync(join(env.dataDir, 'ca'), join(env.dir, 'data-r', 'ca'), { recursive: true });
      const replica = await startDaemon({ configPath: env.configPath, dataDir: join(env.dir, 'data-r'), secret: shared, log: pino({ level: 'silent' }) });
      try {
        const fromA = (await api(a.url, 'POST', '/v1/auth/challenge', { user: 'alice' })).body.challenge as string;
        expect((await tokenFor(replica, env, fromA)).status).toBe(200);
        expect((await tokenFor(replica, env, fromA)).status).toBe(401); // and it is single use there
      } finally {
        await replica.close();
      }
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
      env.cleanup();
      envB.cleanup();
    }
  });

  it('ok/the challenge key lives 0600 in the data dir and survives a restart', async () => {
    const env = makeEnv();
    let d = await startWith(env);
    try {
      const st = statSync(join(env.dataDir, 'auth-secret'));
      expect(st.mode & 0o777).toBe(0o600);
      const c = (await api(d.url, 'POST', '/v1/auth/challenge', { user: 'alice' })).body.challenge as string;
      const url = new URL(d.url);
      await d.close();
      writeFileSync(env.configPath, readFileSync(env.configPath, 'utf8').replace('listen: 127.0.0.1:0', `listen: 127.0.0.1:${url.port}`));
      d = await startWith(env);
      expect((await tokenFor(d, env, c)).status).toBe(200);
    } finally {
      await d.close();
      env.cleanup();
    }
  });

  it('fail/a challenge key readable by others is refused at start', async () => {
    const env = makeEnv();
    const d = await startWith(env);
    await d.close();
    chmodSync(join(env.dataDir, 'auth-secret'), 0o644);
    try {
      await expect(startWith(env)).rejects.toThrow(/auth-secret is readable by others/);
    } finally {
      env.cleanup();
    }
  });
});
