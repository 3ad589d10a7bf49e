/** Hostile input at the edge: every case is a 4xx JSON error with a code; nothing is issued; the daemon stays healthy. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { api, login, makeEnv, startTestDaemon, subjectKey, type TestEnv } from '../helpers/daemon.js';
import { generateKey } from '../helpers/keys.js';
import { describeWithTools } from '../helpers/tools.js';

describeWithTools(['ssh-keygen'], 'hostile input', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let token: string;
  let good: string;

  beforeAll(async () => {
    env = makeEnv();
    d = await startTestDaemon(env);
    token = await login(d.url, 'alice', env.keys.alice);
    good = subjectKey(env, 'good').publicLine;
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  const req = (over: Record<string, unknown>) => ({ target: 'prod-db', task: 'check-logs', publicKey: good, ...over });
  const b64 = () => good.split(' ')[1];

  const table: Array<[string, () => unknown, number, string?]> = [
    ['fail/truncated key blob', () => req({ publicKey: `ssh-ed25519 ${b64().slice(0, 30)}` }), 400, 'invalid_key'],
    ['fail/trailing garbage in blob', () => req({ publicKey: `ssh-ed25519 ${Buffer.concat([Buffer.from(b64(), 'base64'), Buffer.from('xx')]).toString('base64')}` }), 400, 'invalid_key'],
    ['fail/type mismatch', () => req({ publicKey: `ecdsa-sha2-nistp256 ${b64()}` }), 400, 'invalid_key'],
    ['fail/not base64', () => req({ publicKey: 'ssh-ed25519 !!!!' }), 400, 'invalid_key'],
    ['fail/DSA key', () => req({ publicKey: generateKey(env.dir, 'dsa', 'dsa').publicLine }), 400, 'invalid_key'],
    ['fail/RSA 2048 below the floor', () => req({ publicKey: generateKey(env.dir, 'rsa2k', 'rsa2048').publicLine }), 400, 'invalid_key'],
    ['fail/the CA key itself', () => req({ publicKey: d.deps.ca.active().publicKeyLine }), 400, 'invalid_key'],
    ['fail/account with comma (principal injection)', () => req({ account: 'readonly,root' }), 400, 'invalid_field'],
    ['fail/account with wildcard', () => req({ account: '*' }), 400, 'invalid_field'],
    ['fail/account with newline', () => req({ account: 'readonly\nroot' }), 400, 'invalid_field'],
    ['fail/account with NUL', () => req({ account: 'readonly\u0000root' }), 400, 'invalid_field'],
    ['fail/target very long', () => req({ target: 'a'.repeat(5000) }), 400, 'invalid_field'],
    ['fail/unicode target', () => req({ target: 'prod-dβ' }), 400, 'invalid_field'],
    ['fail/negative ttl', () => req({ ttl: -5 }), 400, 'invalid_ttl'],
    ['fail/huge ttl number', () => req({ ttl: 1e12 }), 400, 'invalid_ttl'],
    ['fail/ttl 1e309 string', () => req({ ttl: '1e309' }), 400, 'invalid_ttl'],
    ['fail/ttl with space', () => req({ ttl: '15 m' }), 400, 'invalid_ttl'],
    ['fail/ttl wrong type', () => req({ ttl: { m: 15 } }), 400, 'invalid_field'],
    ['fail/target wrong type', () => req({ target: ['prod-db'] }), 400, 'invalid_field'],
    ['fail/unknown field', () => req({ principals: ['root'] }), 400, 'invalid_field'],
    ['fail/missing publicKey', () => ({ target: 'prod-db', task: 'check-logs' }), 400, 'invalid_field'],
    ['fail/body is an array', () => [req({})], 400, 'bad_request'],
    ['fail/reason with control characters', () => req({ reason: 'a\u0007b' }), 400, 'invalid_field'],
    ['fail/ticket with colon (key id injection)', () => req({ ticket: 'INC-1:admin' }), 400, 'invalid_field'],
  ];

  it.each(table)('%s', async (_name, body, status, code) => {
    const r = await api(d.url, 'POST', '/v1/requests', body(), token);
    expect(r.status).toBe(status);
    expect(r.body.error.code).toBe(code);
    expect(typeof r.body.error.message).toBe('string');
    expect(r.body.certificate).toBeUndefined();
  });

  // Issue 11.10: one rule for every free-text field, refused at the edge with the field named.
  const HOSTILE_TEXT: Array<[string, string]> = [
    ['8-bit CSI U+009B', 'fix \u009b2J\u009b31mAPPROVED'],
    ['ESC sequence', 'fix \u001b]0;pwned\u0007'],
    ['RLO U+202E', 'routine \u202etoor'],
    ['RLI U+2067', 'a\u2067b'],
    ['LRM U+200E', 'a\u200eb'],
    ['ALM U+061C', 'a\u061cb'],
    ['newline', 'line one\nline two'],
    ['501 characters', 'x'.repeat(501)],
  ];
  const ID = 'req_AAAAAAAAAAAAAAAA'; // well formed, unknown: a valid body gets 404, so a 400 is the text's fault
  const FIELDS: Array<[string, string, string, (text: string) => unknown]> = [
    ['request reason', 'POST', '/v1/requests', (t) => req({ reason: t })],
    ['approve comment', 'POST', `/v1/requests/${ID}/approve`, (t) => ({ comment: t })],
    ['deny reason', 'POST', `/v1/requests/${ID}/deny`, (t) => ({ reason: t })],
    ['revoke reason', 'POST', `/v1/requests/${ID}/revoke`, (t) => ({ reason: t })],
    ['revocation reason', 'POST', '/v1/revocations', (t) => ({ serial: '1', reason: t })],
  ];
  const fieldCases = FIELDS.flatMap(([field, method, path, body]) => HOSTILE_TEXT.map(([what, text]) => [field, what, method, path, body(text)] as const));

  it.each(fieldCases)('fail/%s with %s → 400 naming the field', async (_field, _what, method, path, body) => {
    const r = await api(d.url, method, path, body, token);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('invalid_field');
    const field = Object.keys(body as object).find((k) => ['reason', 'comment'].includes(k));
    expect(r.body.error.message).toMatch(new RegExp(`^${field}: must (not contain control or bidirectional-formatting characters|be at most 500 characters)`));
  });

  it('ok/the same fields with ordinary text in any script pass the edge (controls: 404/403, not 400)', async () => {
    const text = 'Grüße — 日本語 — עברית 🚀 INC-42';
    for (const [, method, path, body] of FIELDS.slice(1)) {
      expect((await api(d.url, method, path, body(text), token)).status).not.toBe(400);
    }
    const created = await api(d.url, 'POST', '/v1/requests', req({ reason: text }), token);
    expect(created.status).toBe(201);
    expect(created.body.certificate).toMatch(/-cert-v01@openssh.com /);
  });

  it('fail/body over 64 KiB → 413', async () => {
    const r = await api(d.url, 'POST', '/v1/requests', req({ reason: 'x'.repeat(70_000) }), token);
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('body_too_large');
  });

  it('fail/invalid JSON → 400', async () => {
    const r = await api(d.url, 'POST', '/v1/requests', '{"target": ', token);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('bad_request');
  });

  it('fail/unknown route and bad ids → 404 JSON', async () => {
    expect((await api(d.url, 'GET', '/v1/nope')).body.error.code).toBe('not_found');
    expect((await api(d.url, 'GET', '/v1/requests/../../etc/passwd', undefined, token)).status).toBe(404);
    expect((await api(d.url, 'GET', '/v1/requests/req_doesnotexist0000', undefined, token)).status).toBe(404);
  });

  it('ok/after all of it: healthy, no issue record, no stack trace in any answer', async () => {
    expect((await api(d.url, 'GET', '/healthz')).status).toBe(200);
    const records = await d.deps.audit.tail(0, 10_000);
    expect(records.filter((r) => r.type === 'issue')).toHaveLength(1); // only the ordinary-text control case
    const r = await api(d.url, 'POST', '/v1/requests', '{"target": ', token);
    expect(JSON.stringify(r.body)).not.toMatch(/at .*\.js:\d+/);
  });
});
