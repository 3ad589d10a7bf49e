/**
 * Mass revocation is one batch (issue 10.2): revoking every grant of a user (or of a key) writes
 * one audit record per grant, group-committed, and the state once — not once per grant — and
 * the KRL lists every serial. The goal (10,000 grants in ≤ 2 s) is measured and printed, not
 * asserted; the count here is bounded so the test stays quick (MASS_REVOKE=10000 for the goal).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseKrl } from '../../src/ca/krl.js';
import type { RunningDaemon } from '../../src/daemon.js';
import { createRequest } from '../../src/service/issue.js';
import { currentKrl } from '../../src/service/krl.js';
import { revokeKey, revokeUser } from '../../src/service/revoke.js';
import type { OpenedState } from '../../src/store/state.js';
import { makeEnv, startTestDaemon, subjectKey, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';
import { readAudit } from '../reliability/support.js';

const N = Number(process.env.MASS_REVOKE ?? 3000);

describeWithTools(['ssh-keygen'], 'mass revocation is one batch', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  const alice = { user: 'alice', groups: ['sre', 'oncall'], via: 'ssh-key' as const };
  const erin = { user: 'erin', groups: ['admins', 'auditors'], via: 'ssh-key' as const };

  beforeAll(async () => {
    env = makeEnv({ config: 'limits: { requestsPerMinute: 100000, liveCertificates: 1000000, pendingRequests: 1000 }' });
    d = await startTestDaemon(env);
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  async function issueMany(n: number, publicKey: string): Promise<string[]> {
    const serials: string[] = [];
    for (let done = 0; done < n; done += 500) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(500, n - done) }, () => createRequest(d.deps, alice, { target: 'prod-db', task: 'check-logs', publicKey }, '127.0.0.1')),
      );
      for (const r of batch) if (r.status === 'issued') serials.push(r.serial);
    }
    return serials;
  }

  const writes = () => (d.deps.state as OpenedState).stats.writes;

  it(`ok/revoking ${N} grants of a user: one revoke record each, a handful of state writes, every serial in the KRL`, async () => {
    const serials = await issueMany(N, subjectKey(env, 'many').publicLine);
    // Plus pending requests, which go through their per-request locks.
    for (let i = 0; i < 3; i++) {
      const p = await createRequest(d.deps, alice, { target: 'prod-db', task: 'incident', ticket: `INC-${i}`, publicKey: subjectKey(env, `p${i}`).publicLine }, undefined);
      expect(p.status).toBe('pending');
    }
    const writesBefore = writes();
    const t0 = performance.now();
    const revoked = await revokeUser(d.deps, erin, 'alice', 'offboarding');
    const ms = performance.now() - t0;
    console.log(`revoked ${revoked.length} grants of one user in ${ms.toFixed(0)} ms, ${writes() - writesBefore} state writes`);
    expect(revoked).toHaveLength(N + 3);
    // Before: one whole-file rewrite + fsync per grant. Now: the batch, plus the pending ones
    // (group-committed together).
    expect(writes() - writesBefore).toBeLessThanOrEqual(4);
    const records = readAudit(env.dataDir).filter((r) => r.type === 'revoke' && r.by === 'erin');
    expect(records).toHaveLength(N + 3);
    expect(new Set(records.map((r) => r.serial).filter(Boolean))).toEqual(new Set(serials));
    const krl = parseKrl((await currentKrl(d.deps)).bytes);
    const inKrl = new Set(krl.certificates.flatMap((c) => [...c.serials, ...c.serialRanges.flatMap(([a, b]) => Array.from({ length: Number(b - a) + 1 }, (_, i) => a + BigInt(i)))]).map(String));
    for (const s of serials) expect(inKrl.has(s)).toBe(true);
    expect(await d.deps.state.countActiveGrants('alice', Math.floor(Date.now() / 1000))).toBe(0);
    // A second run finds nothing live and writes nothing.
    expect(await revokeUser(d.deps, erin, 'alice')).toEqual([]);
  }, 120_000);

  it('ok/revoking a key: its grants in one batch, the key itself once', async () => {
    const key = subjectKey(env, 'shared');
    const serials = await issueMany(500, key.publicLine);
    const fp = (await import('../../src/ca/keys.js')).parsePublicKey(key.publicLine).fingerprint;
    const writesBefore = writes();
    const revoked = await revokeKey(d.deps, erin, fp, 'leaked');
    expect(revoked.map((r) => r.cert?.serial).sort()).toEqual([...serials].sort());
    expect(writes() - writesBefore).toBeLessThanOrEqual(2);
    expect((await d.deps.state.listRevocations(Math.floor(Date.now() / 1000))).keys.map((k) => k.fingerprint)).toContain(fp);
  }, 60_000);
});
