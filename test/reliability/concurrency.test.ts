/**
 * Concurrency: 1,000 requests at once from 60 users (auto-issued, pending, denied, mixed) →
 * every certificate has a unique serial, every answer its own request id, one audit record per
 * request, and the chain verifies.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseCertificate } from '../../src/ca/cert.js';
import { startDaemon, type RunningDaemon } from '../../src/daemon.js';
import { verifyAuditFile } from '../../src/store/audit.js';
import { makeEnv, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';
import { captureLog, expectNoSecrets, freshPublicLine, readAudit, staticTokens, type Tokens } from './support.js';

const TOTAL = 1000;

describeWithTools(['ssh-keygen'], 'reliability: 1,000 concurrent requests', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let tokens: Tokens;
  const capture = captureLog();
  const oncall = Array.from({ length: 40 }, (_, i) => `oc${i}`);
  const dbas = Array.from({ length: 10 }, (_, i) => `dba${i}`);
  const interns = Array.from({ length: 10 }, (_, i) => `intern${i}`);
  const keys = Array.from({ length: 50 }, (_, i) => freshPublicLine(`k${i}@rel`));
  type Answer = { kind: 'auto' | 'pending' | 'denied'; status: number; body: any };
  let answers: Answer[] = [];
  let seconds = 0;

  beforeAll(async () => {
    tokens = staticTokens([...oncall, ...dbas, ...interns]);
    env = makeEnv({
      users: {
        ...Object.fromEntries(oncall.map((u) => [u, ['oncall']])),
        ...Object.fromEntries(dbas.map((u) => [u, ['dba']])),
        ...Object.fromEntries(interns.map((u) => [u, ['interns']])),
        bob: ['sre-leads'],
      },
      tokens: tokens.yaml,
      // Load, not per-user limits, is under test: each user sends far more than the defaults allow.
      config: 'limits: { requestsPerMinute: 100000, liveCertificates: 100000, pendingRequests: 10000 }',
    });
    d = await startDaemon({ configPath: env.configPath, log: capture.log });
    const plan = Array.from({ length: TOTAL }, (_, i): { kind: Answer['kind']; user: string; body: object } => {
      const publicKey = keys[i % keys.length];
      if (i % 10 === 7) return { kind: 'pending', user: dbas[i % dbas.length], body: { target: 'prod-db', task: 'incident', ticket: `INC-${i}`, publicKey } };
      if (i % 10 === 3) return { kind: 'denied', user: interns[i % interns.length], body: { target: 'prod-db', task: 'check-logs', publicKey } };
      return { kind: 'auto', user: oncall[i % oncall.length], body: { target: i % 2 ? 'prod-db' : 'prod-web', task: 'check-logs', publicKey } };
    });
    const t0 = performance.now();
    answers = await Promise.all(
      plan.map(async (p) => {
        const res = await fetch(`${d.url}/v1/requests`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.byUser[p.user]}` },
          body: JSON.stringify(p.body),
        });
        return { kind: p.kind, status: res.status, body: await res.json() };
      }),
    );
    seconds = (performance.now() - t0) / 1000;
  }, 120_000);
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  it('every request got its intended answer: 201 issued, 202 pending, 403 denied; no 5xx', () => {
    const by = (k: Answer['kind']) => answers.filter((a) => a.kind === k);
    expect(answers.length).toBe(TOTAL);
    expect(answers.filter((a) => a.status >= 500)).toEqual([]);
    expect(by('auto').map((a) => a.status)).toEqual(by('auto').map(() => 201));
    expect(by('pending').map((a) => a.status)).toEqual(by('pending').map(() => 202));
    expect(by('denied').map((a) => a.body.error?.code)).toEqual(by('denied').map(() => 'policy_denied'));
    console.info(`1,000 concurrent requests answered in ${seconds.toFixed(1)} s`);
  });

  it('serials are unique, in the answers, in the certificates and in the audit', () => {
    const issued = answers.filter((a) => a.status === 201);
    const serials = issued.map((a) => a.body.serial as string);
    expect(new Set(serials).size).toBe(serials.length);
    for (const a of issued) expect(parseCertificate(a.body.certificate).serial.toString()).toBe(a.body.serial);
    const audited = readAudit(env.dataDir).filter((r) => r.type === 'issue');
    expect(audited.length).toBe(issued.length);
    expect(new Set(audited.map((r) => r.serial)).size).toBe(audited.length);
    expect(new Set(audited.map((r) => r.serial))).toEqual(new Set(serials));
  });

  it('request ids are unique and each request has exactly one audit record', () => {
    const ids = answers.map((a) => (a.status === 403 ? a.body.error.details.requestId : a.body.id) as string);
    expect(new Set(ids).size).toBe(TOTAL);
    const recs = readAudit(env.dataDir);
    expect(recs.length).toBe(TOTAL);
    expect(new Set(recs.map((r) => r.id))).toEqual(new Set(ids));
    const types = new Map<string, number>();
    for (const r of recs) types.set(r.type, (types.get(r.type) ?? 0) + 1);
    expect(Object.fromEntries(types)).toEqual({ issue: 800, request: 100, deny: 100 });
  });

  it('the audit chain is intact', async () => {
    const v = await verifyAuditFile(join(env.dataDir, 'audit.jsonl'));
    expect(v).toMatchObject({ ok: true, records: TOTAL });
  });

  it('secrets: the log and the audit hold no private key, token or signature', () => {
    expectNoSecrets(
      { log: capture.text(), 'audit.jsonl': readAudit(env.dataDir).map((r) => JSON.stringify(r)).join('\n') },
      Object.values(tokens.byUser),
    );
  });
});
