/** 10,000 past issuances: the state stays bounded once they expire, and the audit chain verifies. */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { createRequest } from '../../src/service/issue.js';
import { verifyAuditFile } from '../../src/store/audit.js';
import { makeEnv, startTestDaemon, subjectKey, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';

describeWithTools(['ssh-keygen'], 'bounded state', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let now = Date.parse('2026-11-25T12:00:00Z');
  const clock = { now: () => now };

  beforeAll(async () => {
    // Far above the per-user defaults: this test is about state size, not about the limits.
    env = makeEnv({ config: 'limits: { requestsPerMinute: 100000, liveCertificates: 100000 }' });
    d = await startTestDaemon(env, { clock });
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  it('ok/10,000 issuances, then expiry: prune empties live state; the audit keeps all and verifies', async () => {
    const key = subjectKey(env, 'bulk').publicLine;
    const identity = { user: 'alice', groups: ['sre', 'oncall'], via: 'ssh-key' as const };
    const serials = new Set<string>();
    for (let batch = 0; batch < 50; batch++) {
      const results = await Promise.all(
        Array.from({ length: 200 }, () => createRequest(d.deps, identity, { target: 'prod-db', task: 'check-logs', ttl: '5m', publicKey: key }, '127.0.0.1')),
      );
      for (const r of results) {
        expect(r.status).toBe('issued');
        if (r.status === 'issued') serials.add(r.serial);
      }
    }
    expect(serials.size).toBe(10_000);
    expect(await d.deps.state.countActiveGrants('alice', Math.floor(now / 1000))).toBe(10_000);

    now += 3 * 3600_000; // past validBefore and the grace period
    await d.deps.state.prune(Math.floor(now / 1000));
    await d.deps.state.flush();
    expect(await d.deps.state.countActiveGrants('alice', Math.floor(now / 1000))).toBe(0);
    expect((await d.deps.state.listRequests({})).length).toBe(0);
    expect(statSync(join(env.dataDir, 'state.json')).size).toBeLessThan(4096);

    const v = await verifyAuditFile(join(env.dataDir, 'audit.jsonl'));
    expect(v.ok).toBe(true);
    if (v.ok) expect(v.records).toBeGreaterThanOrEqual(10_000);
  }, 120_000);
});
