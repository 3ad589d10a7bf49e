/** SSH-key challenge login and bearer tokens, with signatures from the real ssh-keygen -Y sign. */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
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
    // makeEnv sets a huge limit; a second config line overrides it for this test
    const { writeFileSync, readFileSync } = await import('node:fs');
    writeFileSync(env.configPath, readFileSync(env.configPath, 'utf8').replace('perMinute: 100000', 'perMinute: 5'));
    const d = await startTestDaemon(env);
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) statuses.push((await api(d.url, 'POST', '/v1/auth/challenge', { user: 'alice' })).status);
      expect(statuses.slice(0, 5).every((s) => s === 200)).toBe(true);
      expect(statuses.slice(5)).toEqual([429, 429, 429]);
    } finally {
      await d.close();
      env.cleanup();
    }
  });
});
