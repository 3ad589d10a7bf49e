/**
 * One user cannot take the CA down (issue 10, items 1 and 3):
 *  - per-user limits (requests a minute, live certificates, pending requests) answer 429 with
 *    Retry-After and name the limit, and leave other users alone;
 *  - a 16 KiB key comment reaches neither the audit log nor the state file;
 *  - the issuance flood of the review (one user, auto rule, 16 KiB comments, as fast as possible)
 *    against a daemon with a 256 MiB heap: it stays up, the heap and the audit grow by a bounded
 *    amount per certificate, and it restarts with the same heap. Bounded to a few seconds here;
 *    the ~20 s run is the same code with FLOOD_SECONDS=20.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { createRequest } from '../../src/service/issue.js';
import { api, login, makeEnv, REPO, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';
import { freePort, freshPublicLine, readAudit, staticTokens } from './support.js';

/** As long a comment as the API takes (publicKey ≤ 16,384 characters). */
const COMMENT_16K = 'c'.repeat(16 * 1024 - 100);

async function post(url: string, token: string, body: object): Promise<{ status: number; retryAfter: string | null; body: any }> {
  const res = await fetch(`${url}/v1/requests`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.json() };
}

const auto = (publicKey = freshPublicLine()) => ({ target: 'prod-db', task: 'check-logs', publicKey });
const needsApproval = (i: number) => ({ target: 'prod-db', task: 'incident', ticket: `INC-${i}`, publicKey: freshPublicLine() });

describeWithTools(['ssh-keygen'], 'reliability: per-user limits (defaults)', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let alice: string;

  beforeAll(async () => {
    env = makeEnv(); // the embedded limits: 30 requests a minute, 50 live certificates, 5 pending
    d = await startTestDaemon(env);
    alice = await login(d.url, 'alice', env.keys.alice);
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  it('fail/a burst over limits.requestsPerMinute: the rest get 429 naming the limit, with Retry-After; another user is unaffected', async () => {
    const answers = await Promise.all(Array.from({ length: 40 }, () => post(d.url, alice, auto())));
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(30);
    const refused = answers.filter((a) => a.status === 429);
    expect(refused).toHaveLength(10);
    for (const r of refused) {
      expect(r.body.error.code).toBe('rate_limited');
      expect(r.body.error.message).toContain('limits.requestsPerMinute');
      expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(Number(r.retryAfter)).toBeLessThanOrEqual(60);
      expect(r.body.error.details).toMatchObject({ limit: 'limits.requestsPerMinute', retryAfter: Number(r.retryAfter) });
    }
    const carol = await login(d.url, 'carol', env.keys.carol);
    expect((await post(d.url, carol, { target: 'staging-web', task: 'check-logs', publicKey: freshPublicLine() })).status).toBe(201);
  });

  it('fail/over limits.pendingRequests: 429 naming the limit until one of them ends', async () => {
    const dave = await login(d.url, 'dave', env.keys.dave);
    const first = [];
    for (let i = 0; i < 5; i++) first.push(await post(d.url, dave, needsApproval(i)));
    expect(first.map((a) => a.status)).toEqual([202, 202, 202, 202, 202]);
    const sixth = await post(d.url, dave, needsApproval(6));
    expect(sixth.status).toBe(429);
    expect(sixth.body.error.message).toContain('limits.pendingRequests');
    // Retry-After: when the oldest pending request expires (pendingTtl 1 h).
    expect(Number(sixth.retryAfter)).toBeGreaterThan(3000);
    expect(Number(sixth.retryAfter)).toBeLessThanOrEqual(3600);
    expect((await api(d.url, 'POST', `/v1/requests/${first[0].body.id}/revoke`, {}, dave)).status).toBe(200);
    expect((await post(d.url, dave, needsApproval(7))).status).toBe(202);
  });

  it('ok/a 16 KiB key comment reaches neither the audit log nor the state file', async () => {
    const bob = await login(d.url, 'bob', env.keys.bob);
    const mallory = await login(d.url, 'mallory', env.keys.mallory);
    const carol = await login(d.url, 'carol', env.keys.carol);
    const pubIssued = freshPublicLine(COMMENT_16K);
    const pubPending = freshPublicLine(COMMENT_16K);
    expect((await post(d.url, bob, { target: 'staging-web', task: 'check-logs', publicKey: pubIssued })).status).toBe(201);
    const pending = await post(d.url, carol, { ...needsApproval(99), publicKey: pubPending });
    expect(pending.status, JSON.stringify(pending.body)).toBe(202);
    expect((await post(d.url, mallory, auto(freshPublicLine(COMMENT_16K)))).status).toBe(403); // denied: audited too
    await d.deps.state.flush();
    const audit = readFileSync(join(env.dataDir, 'audit.jsonl'), 'utf8');
    expect(audit).not.toContain(COMMENT_16K.slice(0, 64));
    for (const line of audit.trim().split('\n')) expect(line.length).toBeLessThan(4096);
    await d.deps.state.flush();
    const stateText = ['state.json', 'state.journal'].map((f) => (existsSync(join(env.dataDir, f)) ? readFileSync(join(env.dataDir, f), 'utf8') : '')).join('\n');
    expect(stateText).toContain(pending.body.id); // the pending request is stored…
    expect(stateText).not.toContain(COMMENT_16K.slice(0, 64)); // …without the comment
  });
});

describeWithTools(['ssh-keygen'], 'reliability: limits.liveCertificates', () => {
  let env: TestEnv;
  let d: RunningDaemon;

  beforeAll(async () => {
    env = makeEnv({ config: 'limits: { liveCertificates: 3 }' });
    d = await startTestDaemon(env);
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  it('fail/over the live-certificate quota: 429 naming it, Retry-After = until the soonest expiry; a revocation frees a slot', async () => {
    const alice = await login(d.url, 'alice', env.keys.alice);
    const got = [];
    for (let i = 0; i < 3; i++) got.push(await post(d.url, alice, auto()));
    got.push(...(await Promise.all(Array.from({ length: 2 }, () => post(d.url, alice, auto())))));
    expect(got.map((a) => a.status)).toEqual([201, 201, 201, 429, 429]);
    const refused = got.find((a) => a.status === 429)!;
    expect(refused.body.error.message).toContain('limits.liveCertificates');
    // The default rule's ttl is 15 min: the soonest certificate expires in about that long.
    expect(Number(refused.retryAfter)).toBeGreaterThan(14 * 60);
    expect(Number(refused.retryAfter)).toBeLessThanOrEqual(15 * 60);
    const one = got.find((a) => a.status === 201)!;
    expect((await api(d.url, 'POST', `/v1/requests/${one.body.id}/revoke`, {}, alice)).status).toBe(200);
    expect((await post(d.url, alice, auto())).status).toBe(201);
  });

  it('fail/a concurrent burst of requests for approval still stops at limits.pendingRequests', async () => {
    const alice = await login(d.url, 'alice', env.keys.alice);
    const got = await Promise.all(Array.from({ length: 8 }, (_, i) => post(d.url, alice, needsApproval(100 + i))));
    const statuses = got.map((a) => a.status);
    expect(statuses.filter((s) => s === 202).length).toBeLessThanOrEqual(5);
    expect(statuses.filter((s) => s === 202).length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s !== 202).every((s) => s === 429)).toBe(true);
    expect(await d.deps.state.countPending('alice', Date.now())).toBeLessThanOrEqual(5);
  });
});

describeWithTools(['ssh-keygen'], 'reliability: issuance flood against a 256 MiB heap', () => {
  const seconds = Number(process.env.FLOOD_SECONDS ?? 4);
  let env: TestEnv;
  let child: ChildProcess | undefined;
  let url: string;
  const output: string[] = [];
  const tokens = staticTokens(['alice']);

  const start = async (): Promise<ChildProcess> => {
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const c = spawn(process.execPath, ['--max-old-space-size=256', join(REPO, 'dist/cli/jit-sshd.js'), 'serve', '--config', env.configPath, '--listen', `127.0.0.1:${port}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    c.stdout!.on('data', (b) => output.push(String(b)));
    c.stderr!.on('data', (b) => output.push(String(b)));
    const t0 = performance.now();
    for (;;) {
      if (c.exitCode !== null) throw new Error(`daemon exited ${c.exitCode}: ${output.join('').slice(-2000)}`);
      if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) return c;
      if (performance.now() - t0 > 30_000) throw new Error('daemon not healthy after 30 s');
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const heapUsed = async (): Promise<number> => {
    const text = await (await fetch(`${url}/metrics`)).text();
    return Number(/^jitsshd_nodejs_heap_size_used_bytes (\d+(?:\.\d+)?(?:e\+\d+)?)$/m.exec(text)?.[1] ?? NaN);
  };
  const stop = async (c: ChildProcess | undefined) => {
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await exited;
  };

  beforeAll(() => {
    // The flood is the attack on memory, not on the limits: lift them far out of the way.
    env = makeEnv({ tokens: tokens.yaml, config: 'limits: { requestsPerMinute: 100000, liveCertificates: 1000000 }' });
  });
  afterAll(async () => {
    await stop(child);
    env?.cleanup();
  });

  it(`ok/${seconds} s of flood with 16 KiB comments: the daemon stays up; heap and audit grow by a bounded amount per certificate; it restarts with the same heap`, async () => {
    child = await start();
    const heapBefore = await heapUsed();
    const auditFile = join(env.dataDir, 'audit.jsonl');
    const auditBefore = statSync(auditFile).size;
    const keys = Array.from({ length: 32 }, () => freshPublicLine(COMMENT_16K));
    const until = performance.now() + seconds * 1000;
    let issued = 0;
    const statuses: Record<number, number> = {};
    await Promise.all(
      keys.map(async (publicKey) => {
        while (performance.now() < until) {
          const r = await post(url, tokens.byUser.alice, auto(publicKey));
          statuses[r.status] = (statuses[r.status] ?? 0) + 1;
          if (r.status === 201) issued++;
        }
      }),
    );
    const heapAfter = await heapUsed();
    const auditBytes = statSync(auditFile).size - auditBefore;
    const perCert = { heap: (heapAfter - heapBefore) / issued, audit: auditBytes / issued };
    console.log(
      `flood ${seconds} s: ${issued} certificates (${JSON.stringify(statuses)}); heap ${(heapBefore / 2 ** 20).toFixed(1)} → ${(heapAfter / 2 ** 20).toFixed(1)} MiB` +
        ` (${Math.round(perCert.heap)} B/cert); audit +${(auditBytes / 2 ** 20).toFixed(1)} MiB (${Math.round(perCert.audit)} B/cert)`,
    );
    expect(child.exitCode).toBeNull();
    expect(Object.keys(statuses)).toEqual(['201']);
    expect(issued).toBeGreaterThan(100);
    // Before the fix: ~18 KB of audit per certificate (the comment, kept twice) and the heap
    // limit reached in ~35 s. (Retained heap per certificate is measured exactly, with a forced
    // GC, in the in-process test below; here the heap includes garbage not yet collected.)
    expect(perCert.audit).toBeLessThan(2048);
    expect(heapAfter).toBeLessThan(160 * 2 ** 20);
    expect(readAudit(env.dataDir).some((r) => JSON.stringify(r).includes(COMMENT_16K.slice(0, 64)))).toBe(false);

    // The replay of all of that on restart fits in the same heap.
    await stop(child);
    child = await start();
    expect(await heapUsed()).toBeLessThan(128 * 2 ** 20);
    expect((await post(url, tokens.byUser.alice, auto())).status).toBe(201);
  }, 120_000);
});

/** A forced full GC, so heap figures are what is retained (node's --expose-gc, set at run time). */
function collectGarbage(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describeWithTools(['ssh-keygen'], 'reliability: memory per live certificate, and none for expired ones', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let now = Date.parse('2026-11-25T12:00:00Z');

  beforeAll(async () => {
    env = makeEnv({ config: 'limits: { requestsPerMinute: 100000, liveCertificates: 1000000 }' });
    d = await startTestDaemon(env, { clock: { now: () => now } });
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  it('ok/9,000 live auto grants with 16 KiB key comments retain under 2 KiB of heap each; after expiry and prune, ~nothing', async () => {
    const identity = { user: 'alice', groups: ['sre', 'oncall'], via: 'ssh-key' as const };
    const keys = Array.from({ length: 50 }, () => freshPublicLine(COMMENT_16K));
    const issueOnce = (i: number) => createRequest(d.deps, identity, { target: 'prod-db', task: 'check-logs', ttl: '5m', publicKey: keys[i % keys.length] }, '127.0.0.1');
    await Promise.all(Array.from({ length: 200 }, (_, i) => issueOnce(i))); // warm-up: code, caches
    const base = collectGarbage();
    // Enough grants that what they hold (~0.5 KiB each) stands well above GC noise (up to ~0.7
    // MiB), and fewer than the 10,000 records after which a start-up snapshot is written (one in
    // flight holds the grants it lists until it is on disk).
    const N = 9_000;
    for (let b = 0; b < N / 250; b++) await Promise.all(Array.from({ length: 250 }, (_, i) => issueOnce(i)));
    const live = collectGarbage();
    expect(await d.deps.state.countActiveGrants('alice', Math.floor(now / 1000))).toBe(N + 200);
    now += 3600_000; // all expired
    await d.deps.state.prune(Math.floor(now / 1000));
    await d.deps.state.flush();
    const after = collectGarbage();
    console.log(`retained heap: ${Math.round((live - base) / N)} B per live grant; ${Math.round((after - base) / 1024)} KiB over baseline after expiry`);
    expect((live - base) / N).toBeLessThan(2048);
    // Not kept: what stays is GC and allocator noise (measured 0.2–0.7 MiB here), far below the
    // ~5 MiB the expired grants held; a quarter leaves room for that noise on a busy machine.
    expect(after - base).toBeLessThan((live - base) / 4);
    expect(await d.deps.state.listRequests({ user: 'alice' })).toEqual([]);
  }, 120_000);
});
