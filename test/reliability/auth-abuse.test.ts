/**
 * Issue 10.4, anonymous lockout, as an attack with a bounded load: strangers who ask for
 * challenges naming alice, or send her bad signatures, from many addresses, cannot stop alice
 * from logging in; unauthenticated challenge requests leave nothing in server memory; one IPv6
 * /64 counts as one client. Addresses vary through X-Forwarded-For from a trusted proxy
 * (127.0.0.1), the way a deployment behind a load balancer sees them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { makeEnv, sshKeygenSign, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';

const PER_ADDRESS = 5;
const FAILURES_PER_USER = 3;

async function call(url: string, path: string, body: unknown, from: string): Promise<{ status: number; body: any; retryAfter: string | null }> {
  const res = await fetch(url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': from },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json(), retryAfter: res.headers.get('retry-after') };
}

describeWithTools(['ssh-keygen'], 'reliability: nobody can lock another user out of login', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let now = Date.now();
  const clock = { now: () => now };
  const challenge = async (user: string, from: string) => call(d.url, '/v1/auth/challenge', { user }, from);
  const loginAs = async (from: string) => {
    const c = await challenge('alice', from);
    expect(c.status).toBe(200);
    return call(d.url, '/v1/auth/token', { user: 'alice', challenge: c.body.challenge, signature: sshKeygenSign(env.keys.alice.path, c.body.challenge) }, from);
  };

  beforeAll(async () => {
    env = makeEnv({ config: 'trustedProxies: ["127.0.0.1"]\n' });
    writeFileSync(
      env.configPath,
      readFileSync(env.configPath, 'utf8')
        .replace('perMinute: 100000', `perMinute: ${PER_ADDRESS}`)
        .replace('failuresPerUserPerMinute: 100000', `failuresPerUserPerMinute: ${FAILURES_PER_USER}`),
    );
    d = await startTestDaemon(env, { clock });
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  it('ok/500 challenge requests naming alice from 100 addresses: all answered, none remembered, alice still logs in', async () => {
    const statuses = new Map<number, number>();
    for (let i = 0; i < 500; i++) {
      const from = `198.51.${Math.floor(i / 5) >> 8}.${Math.floor(i / 5) & 255}`; // 5 per address: within its limit
      const r = await challenge('alice', from);
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    }
    expect(Object.fromEntries(statuses)).toEqual({ 200: 500 });
    // Stateless until used: asking costs the server no memory.
    expect(d.deps.challenges.remembered).toBe(0);
    const r = await loginAs('203.0.113.7');
    expect(r.status, JSON.stringify(r.body)).toBe(200);
  });

  it('fail/bad signatures for alice from many addresses hit her failure limit (429), yet her valid signature still works', async () => {
    now += 61_000; // fresh windows
    const statuses: number[] = [];
    for (let i = 0; i < 3 * FAILURES_PER_USER; i++) {
      const from = `192.0.2.${10 + i}`;
      const c = await challenge('alice', from);
      const forged = sshKeygenSign(env.keys.mallory.path, c.body.challenge); // a real signature, by the wrong key
      const r = await call(d.url, '/v1/auth/token', { user: 'alice', challenge: c.body.challenge, signature: forged }, from);
      statuses.push(r.status);
      if (r.status === 429) {
        expect(r.body.error.message).toContain('rateLimit.auth.failuresPerUserPerMinute');
        expect(Number(r.retryAfter)).toBeGreaterThan(0);
      }
    }
    expect(statuses.slice(0, FAILURES_PER_USER)).toEqual(Array(FAILURES_PER_USER).fill(401));
    expect(statuses.slice(FAILURES_PER_USER).every((s) => s === 429)).toBe(true);
    // Alice, with her key, from her own address: never locked out by someone else's failures.
    const mine = await loginAs('203.0.113.8');
    expect(mine.status, JSON.stringify(mine.body)).toBe(200);
  });

  it('fail/one IPv6 /64 is one client: rotating addresses inside it does not escape the limit', async () => {
    now += 61_000;
    const statuses: number[] = [];
    for (let i = 1; i <= PER_ADDRESS + 3; i++) statuses.push((await challenge('alice', `2001:db8:77:1::${i.toString(16)}`)).status);
    expect(statuses.slice(0, PER_ADDRESS)).toEqual(Array(PER_ADDRESS).fill(200));
    expect(statuses.slice(PER_ADDRESS)).toEqual([429, 429, 429]);
    const limited = await challenge('alice', '2001:db8:77:1:ffff::1');
    expect(limited.status).toBe(429);
    expect(limited.body.error.message).toContain('rateLimit.auth.perMinute');
    expect(Number(limited.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(limited.retryAfter)).toBeLessThanOrEqual(60);
    // The neighbouring /64 is another client.
    expect((await challenge('alice', '2001:db8:77:2::1')).status).toBe(200);
  });

  it('ok/used challenges are remembered only until they expire', async () => {
    now += 61_000;
    await loginAs('203.0.113.9');
    expect(d.deps.challenges.remembered).toBeGreaterThan(0);
    now += 61_000;
    const r = await loginAs('203.0.113.10'); // using one prunes the expired ones
    expect(r.status).toBe(200);
    expect(d.deps.challenges.remembered).toBe(1);
  });
});
