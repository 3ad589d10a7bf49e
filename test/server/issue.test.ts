/** The daemon's main path over real HTTP: SSH-key login → request → certificate, checked by ssh-keygen -L. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { api, login, makeEnv, startTestDaemon, subjectKey, type TestEnv } from '../helpers/daemon.js';
import { sshKeygen } from '../helpers/keys.js';
import { describeWithTools } from '../helpers/tools.js';

describeWithTools(['ssh-keygen'], 'issuance over HTTP', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let aliceToken: string;

  beforeAll(async () => {
    env = makeEnv();
    d = await startTestDaemon(env);
    aliceToken = await login(d.url, 'alice', env.keys.alice);
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  it('ok/auto rule issues a certificate that ssh-keygen -L shows with exactly the granted fields', async () => {
    const k = subjectKey(env, 'k1');
    const r = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'restart-service', ttl: '5m', publicKey: k.publicLine }, aliceToken);
    expect(r.status).toBe(201);
    expect(r.body.status).toBe('issued');
    expect(r.body.principals).toEqual(['deploy@prod-db']);
    expect(r.body.keyId).toBe(`jit-ssh:${r.body.id}:alice:restart-service`);
    const certFile = join(env.dir, 'k1-cert.pub');
    writeFileSync(certFile, r.body.certificate + '\n');
    const shown = sshKeygen(['-L', '-f', certFile]);
    expect(shown).toContain('Type: ssh-ed25519-cert-v01@openssh.com user certificate');
    expect(shown).toContain(`Key ID: "jit-ssh:${r.body.id}:alice:restart-service"`);
    expect(shown).toContain(`Serial: ${r.body.serial}`);
    expect(shown).toMatch(/Principals: \n\s+deploy@prod-db\n\s+Critical Options: \n\s+force-command echo restarted\n\s+Extensions: \n\s+permit-pty\n/);
    const va = Date.parse(r.body.validAfter);
    const vb = Date.parse(r.body.validBefore);
    expect((vb - va) / 1000).toBe(5 * 60 + 60);
  });

  it('ok/GET /v1/requests/:id shows an auto-issued grant (serial, window; the certificate is handed out once) to its requester only', async () => {
    const k = subjectKey(env, 'k2');
    const r = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: k.publicLine }, aliceToken);
    expect(r.status).toBe(201);
    const again = await api(d.url, 'GET', `/v1/requests/${r.body.id}`, undefined, aliceToken);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ status: 'issued', serial: r.body.serial, validBefore: r.body.validBefore, principals: r.body.principals });
    // The CA keeps a compact index of auto-issued grants, not their certificate text (the audit has it).
    expect(again.body.certificate).toBeUndefined();
    const daveToken = await login(d.url, 'dave', env.keys.dave);
    const other = await api(d.url, 'GET', `/v1/requests/${r.body.id}`, undefined, daveToken);
    expect(other.status).toBe(404);
  });

  it('fail/policy denial is 403 policy_denied with reasons and an audit record, no certificate', async () => {
    const k = subjectKey(env, 'k3');
    const malloryToken = await login(d.url, 'mallory', env.keys.mallory);
    const r = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: k.publicLine }, malloryToken);
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('policy_denied');
    expect(Array.isArray(r.body.error.details.reasons)).toBe(true);
    expect(r.body.certificate).toBeUndefined();
  });

  it('fail/enumeration: an unknown target or task is refused exactly like a real one the requester may not use', async () => {
    const k = subjectKey(env, 'k5');
    const malloryToken = await login(d.url, 'mallory', env.keys.mallory);
    const ask = (target: string, task: string) => api(d.url, 'POST', '/v1/requests', { target, task, publicKey: k.publicLine }, malloryToken);
    const shape = (r: Awaited<ReturnType<typeof ask>>, target: string, task: string) => {
      const { requestId, ...rest } = r.body.error.details;
      expect(requestId).toMatch(/^req_/);
      return JSON.stringify({ status: r.status, code: r.body.error.code, msg: r.body.error.message, rest }).replaceAll(target, 'T').replaceAll(task, 'K');
    };
    const real = shape(await ask('prod-db', 'check-logs'), 'prod-db', 'check-logs');
    expect(shape(await ask('prod-dbx', 'check-logs'), 'prod-dbx', 'check-logs')).toBe(real);
    expect(shape(await ask('prod-db', 'no-such-task'), 'prod-db', 'no-such-task')).toBe(real);
    expect(real).not.toMatch(/unknown/);
    // The operator still sees why in the audit log.
    const audit = readFileSync(join(env.dataDir, 'audit.jsonl'), 'utf8');
    expect(audit).toMatch(/unknown target prod-dbx/);
  });

  it('ok/GET /v1/requests?status=issued leaves out certificates whose window has closed', async () => {
    const k = subjectKey(env, 'k6');
    const r = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', ttl: '1s', publicKey: k.publicLine }, aliceToken);
    expect(r.status).toBe(201);
    await new Promise((res) => setTimeout(res, Date.parse(r.body.validBefore) - Date.now() + 1100));
    const issued = await api(d.url, 'GET', '/v1/requests?status=issued', undefined, aliceToken);
    expect(issued.body.requests.map((x: { id: string }) => x.id)).not.toContain(r.body.id);
    const expired = await api(d.url, 'GET', '/v1/requests?status=expired', undefined, aliceToken);
    expect(expired.body.requests.find((x: { id: string }) => x.id === r.body.id)?.status).toBe('expired');
  });

  it('fail/ttl over the maximum is refused naming the maximum', async () => {
    const k = subjectKey(env, 'k4');
    const r = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', ttl: '2h', publicKey: k.publicLine }, aliceToken);
    expect(r.status).toBe(403);
    expect(r.body.error.message).toMatch(/30m/);
  });

  it('ok/GET /v1/ca, /healthz and /metrics answer', async () => {
    const ca = await api(d.url, 'GET', '/v1/ca');
    expect(ca.status).toBe(200);
    expect(ca.body).toMatch(/^ssh-ed25519 AAAA\S+ /);
    expect((await api(d.url, 'GET', '/healthz')).body.ok).toBe(true);
    const m = await api(d.url, 'GET', '/metrics');
    expect(m.body).toMatch(/jitssh_certificates_issued_total [1-9]/);
  });
});
