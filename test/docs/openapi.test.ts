/**
 * docs/openapi.yaml is true: a real daemon is driven through every route, with success and
 * error cases, and each real response's status, content type and body must be what the
 * document says. The routes the express app has and the operations the document lists must be
 * the same set, so neither can grow alone.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/server/app.js';
import type { RunningDaemon } from '../../src/daemon.js';
import { api, login, makeEnv, sshKeygenSign, startTestDaemon, subjectKey, TEST_HOST_TOKEN, type TestEnv } from '../helpers/daemon.js';
import { startIdp, type TestIdp } from '../helpers/idp.js';
import { generateKey } from '../helpers/keys.js';
import { createHostToken } from '../../src/store/host-tokens.js';
import { describeWithTools } from '../helpers/tools.js';

type Json = Record<string, any>;
const DOC: Json = parse(readFileSync(new URL('../../docs/openapi.yaml', import.meta.url), 'utf8'));
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;
const BASE = 'https://jit-ssh.invalid/openapi.yaml';

// ajv-formats is CommonJS; its default export arrives wrapped under ESM.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (a: Ajv2020) => void;
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema({ ...DOC, $id: BASE });
const validators = new Map<string, ValidateFunction>();
const pointer = (parts: string[]) => parts.map((p) => encodeURIComponent(p.replace(/~/g, '~0').replace(/\//g, '~1'))).join('/');
function validatorAt(parts: string[]): ValidateFunction {
  const ref = `${BASE}#/${pointer(parts)}`;
  let v = validators.get(ref);
  if (!v) validators.set(ref, (v = ajv.compile({ $ref: ref })));
  return v;
}

/** The documented operations, as "METHOD /path/{param}". */
function documentedOperations(): string[] {
  return Object.entries(DOC.paths as Json).flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((m) => `${m.toUpperCase()} ${path}`));
}

/** The app's routes, read from express's router (Layer.rawPath, nested routers included). */
function appOperations(stack: Json[], prefix = ''): string[] {
  return stack.flatMap((layer) => {
    if (layer.route) {
      const path = prefix + String(layer.route.path).replace(/:([A-Za-z]+)/g, '{$1}');
      return Object.keys(layer.route.methods).map((m) => `${m.toUpperCase()} ${path}`);
    }
    if (Array.isArray(layer.handle?.stack)) {
      const mount = typeof layer.rawPath === 'string' && layer.rawPath !== '/' ? layer.rawPath : '';
      return appOperations(layer.handle.stack, prefix + mount);
    }
    return [];
  });
}

interface Seen {
  op: string;
  status: number;
}

describeWithTools(['ssh-keygen'], 'docs/openapi.yaml against the real daemon', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  // SSO on a real OpenID Provider on loopback, so /v1/auth/methods and /v1/auth/oidc answer for real.
  let idp: TestIdp;
  const seen: Seen[] = [];
  const tokens: Record<string, string> = {};

  /**
   * Calls the daemon and checks the answer against the document: the status is documented for
   * this operation, the content type is one the document gives, and a JSON body validates.
   */
  async function call(method: string, template: string, path: string, opts: { body?: unknown; as?: string; headers?: Record<string, string> } = {}) {
    const op = `${method} ${template}`;
    const operation = DOC.paths[template]?.[method.toLowerCase()];
    expect(operation, `${op} is not in docs/openapi.yaml`).toBeTruthy();
    const res = await fetch(d.url + path, {
      method,
      headers: {
        ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(opts.as ? { authorization: `Bearer ${tokens[opts.as]}` } : {}),
        ...opts.headers,
      },
      body: opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body),
    });
    const bytes = Buffer.from(await res.arrayBuffer());
    const status = String(res.status);
    let response = operation.responses[status];
    expect(response, `${op} answered ${status}, which docs/openapi.yaml does not list: ${bytes.toString().slice(0, 300)}`).toBeTruthy();
    let responseParts = ['paths', template, method.toLowerCase(), 'responses', status];
    if (response.$ref) {
      responseParts = response.$ref.replace(/^#\//, '').split('/');
      response = responseParts.reduce((o: Json, k: string) => o[k], DOC);
    }
    seen.push({ op, status: res.status });
    const mediaType = (res.headers.get('content-type') ?? '').split(';')[0].trim();
    if (!response.content) {
      expect(bytes.length, `${op} ${status} has no body in the document`).toBe(0);
      return { status: res.status, body: undefined as any, text: '', headers: res.headers };
    }
    expect(Object.keys(response.content), `${op} ${status} content type`).toContain(mediaType);
    const text = bytes.toString('utf8');
    let body: any = text;
    if (mediaType === 'application/json') {
      body = JSON.parse(text);
      const validate = validatorAt([...responseParts, 'content', mediaType, 'schema']);
      expect(validate(body) ? [] : validate.errors, `${op} ${status} body ${text.slice(0, 300)}`).toEqual([]);
    }
    return { status: res.status, body, text, headers: res.headers };
  }

  beforeAll(async () => {
    idp = await startIdp({ accounts: { carol: { preferred_username: 'carol', groups: ['idp-staff'] } } });
    env = makeEnv({ config: `oidc:\n  issuer: ${idp.issuer}\n  clientId: jit-ssh-cli\n  scopes: [openid, profile, email, groups]\n` });
    d = await startTestDaemon(env);
    for (const user of ['alice', 'bob', 'carol', 'erin', 'mallory', 'dave']) tokens[user] = await login(d.url, user, env.keys[user]);
  });
  afterAll(async () => {
    await d?.close();
    await idp?.close();
    env?.cleanup();
  });

  it('ok/the routes of the app and the operations of the document are the same set', () => {
    const app = createApp(d.deps) as unknown as { router: { stack: Json[] } };
    // The HTML pages (GET /, /ui/…) are for browsers, not part of the JSON API: docs/web.md.
    const isWebPage = (op: string) => / (\/|\/ui\/.*)$/.test(op);
    const ops = appOperations(app.router.stack);
    expect(ops.filter(isWebPage).length).toBeGreaterThan(0);
    expect(ops.filter((op) => !isWebPage(op)).sort()).toEqual(documentedOperations().sort());
  });

  it('ok/every $ref in the document resolves', () => {
    const refs = JSON.stringify(DOC).match(/"\$ref":"[^"]+"/g) ?? [];
    for (const r of refs) {
      const target = r.slice(8, -1).replace(/^#\//, '').split('/').reduce((o: Json | undefined, k) => o?.[k], DOC);
      expect(target, r).toBeTruthy();
    }
  });

  it('ok/auth: challenge and token, and their errors', async () => {
    const ch = await call('POST', '/v1/auth/challenge', '/v1/auth/challenge', { body: { user: 'alice' } });
    expect(ch.status).toBe(200);
    expect((await call('POST', '/v1/auth/challenge', '/v1/auth/challenge', { body: { user: '../etc' } })).status).toBe(400);
    expect((await call('POST', '/v1/auth/challenge', '/v1/auth/challenge', { body: { user: 'x'.repeat(70_000) } })).status).toBe(413);
    const bad = await call('POST', '/v1/auth/token', '/v1/auth/token', { body: { user: 'alice', challenge: ch.body.challenge, signature: 'nope' } });
    expect(bad.status).toBe(401);
    expect((await call('POST', '/v1/auth/token', '/v1/auth/token', { body: { user: 'alice' } })).status).toBe(400);
    // The success case of /v1/auth/token is the helper's login(); check one through the document too.
    const ch2 = await api(d.url, 'POST', '/v1/auth/challenge', { user: 'carol' });
    const { sshKeygenSign } = await import('../helpers/daemon.js');
    const signature = sshKeygenSign(env.keys.carol.path, ch2.body.challenge);
    const ok = await call('POST', '/v1/auth/token', '/v1/auth/token', { body: { user: 'carol', challenge: ch2.body.challenge, signature } });
    expect(ok.status).toBe(200);
  });

  it('ok/auth: methods, and SSO with an ID token from the IdP, and its errors', async () => {
    const methods = await call('GET', '/v1/auth/methods', '/v1/auth/methods');
    expect(methods.body).toMatchObject({ sshKey: true, oidc: { issuer: idp.issuer, clientId: 'jit-ssh-cli' } });
    const O = '/v1/auth/oidc';
    const idToken = await idp.signIdToken({ sub: 'carol-sub', preferred_username: 'carol', groups: ['idp-staff'] });
    const sso = await call('POST', O, O, { body: { idToken } });
    expect(sso.status).toBe(200);
    expect(sso.body.user).toBe('carol');
    expect(sso.body.groups).toContain('idp-staff');
    // Single use: the same token again is the same 401 as a forged one.
    expect((await call('POST', O, O, { body: { idToken } })).status).toBe(401);
    expect((await call('POST', O, O, { body: { idToken: 'a.b.c' } })).status).toBe(401);
    expect((await call('POST', O, O, { body: {} })).status).toBe(400);
  });

  it('ok/the request lifecycle: issue, pending, approve, deny, revoke, list, view, and their errors', async () => {
    const key = () => subjectKey(env, `k${Math.random().toString(36).slice(2, 10)}`).publicLine;
    const R = '/v1/requests';
    const issued = await call('POST', R, R, { as: 'alice', body: { target: 'prod-db', task: 'check-logs', publicKey: key() } });
    expect(issued.status).toBe(201);
    const pending = await call('POST', R, R, { as: 'alice', body: { target: 'prod-db', task: 'incident', ticket: 'INC-1', reason: 'lag', publicKey: key() } });
    expect(pending.status).toBe(202);
    const toDeny = await call('POST', R, R, { as: 'alice', body: { target: 'prod-db', task: 'incident', ticket: 'INC-2', publicKey: key() } });
    expect((await call('POST', R, R, { as: 'mallory', body: { target: 'prod-db', task: 'check-logs', publicKey: key() } })).status).toBe(403);
    expect((await call('POST', R, R, { as: 'alice', body: { target: 'prod-db', task: 'check-logs', publicKey: 'ssh-dss AAAA' } })).status).toBe(400);
    expect((await call('POST', R, R, { body: { target: 'prod-db', task: 'check-logs', publicKey: key() } })).status).toBe(401);

    expect((await call('GET', R, `${R}?status=pending`, { as: 'bob' })).body.requests.length).toBeGreaterThan(0);
    expect((await call('GET', R, R, { as: 'alice' })).status).toBe(200);
    expect((await call('GET', R, `${R}?status=bogus`, { as: 'alice' })).status).toBe(400);
    expect((await call('GET', R, R)).status).toBe(401);

    const one = '/v1/requests/{id}';
    expect((await call('GET', one, `${R}/${issued.body.id}`, { as: 'alice' })).body.status).toBe('issued');
    expect((await call('GET', one, `${R}/${pending.body.id}`, { as: 'alice' })).body.status).toBe('pending');
    expect((await call('GET', one, `${R}/${issued.body.id}`, { as: 'mallory' })).status).toBe(404);
    expect((await call('GET', one, `${R}/req_AAAAAAAAAAAAAAAA`)).status).toBe(401);

    const approve = '/v1/requests/{id}/approve';
    expect((await call('POST', approve, `${R}/${pending.body.id}/approve`, { as: 'alice', body: {} })).status).toBe(403);
    expect((await call('POST', approve, `${R}/${pending.body.id}/approve`, { as: 'bob', body: { extra: 1 } })).status).toBe(400);
    const approved = await call('POST', approve, `${R}/${pending.body.id}/approve`, { as: 'bob', body: { comment: 'go' } });
    expect(approved.body.status).toBe('issued');
    expect((await call('POST', approve, `${R}/${pending.body.id}/approve`, { as: 'carol', body: {} })).status).toBe(409);
    expect((await call('POST', approve, `${R}/req_AAAAAAAAAAAAAAAA/approve`, { as: 'bob', body: {} })).status).toBe(404);
    expect((await call('POST', approve, `${R}/${pending.body.id}/approve`, { body: {} })).status).toBe(401);

    const deny = '/v1/requests/{id}/deny';
    expect((await call('POST', deny, `${R}/${toDeny.body.id}/deny`, { as: 'bob', body: {} })).status).toBe(400);
    expect((await call('POST', deny, `${R}/${toDeny.body.id}/deny`, { as: 'mallory', body: { reason: 'no' } })).status).toBeGreaterThanOrEqual(403);
    const denied = await call('POST', deny, `${R}/${toDeny.body.id}/deny`, { as: 'bob', body: { reason: 'use the runbook' } });
    expect(denied.body.status).toBe('denied');
    expect((await call('POST', deny, `${R}/${toDeny.body.id}/deny`, { as: 'carol', body: { reason: 'again' } })).status).toBe(409);
    expect((await call('GET', one, `${R}/${toDeny.body.id}`, { as: 'alice' })).body.status).toBe('denied');
    expect((await call('POST', deny, `${R}/${toDeny.body.id}/deny`, { body: { reason: 'x' } })).status).toBe(401);

    const revoke = '/v1/requests/{id}/revoke';
    expect((await call('POST', revoke, `${R}/${issued.body.id}/revoke`, { as: 'mallory', body: {} })).status).toBe(404);
    expect((await call('POST', revoke, `${R}/${issued.body.id}/revoke`, { as: 'alice', body: { reason: 7 } })).status).toBe(400);
    const revoked = await call('POST', revoke, `${R}/${issued.body.id}/revoke`, { as: 'alice', body: { reason: 'done' } });
    expect(revoked.body.status).toBe('revoked');
    // Revoking again is idempotent; a denied request has nothing to revoke.
    expect((await call('POST', revoke, `${R}/${issued.body.id}/revoke`, { as: 'alice', body: {} })).body.status).toBe('revoked');
    expect((await call('POST', revoke, `${R}/${toDeny.body.id}/revoke`, { as: 'alice', body: {} })).status).toBe(409);
    expect((await call('POST', revoke, `${R}/${issued.body.id}/revoke`, { body: {} })).status).toBe(401);
    expect((await call('GET', R, `${R}?status=revoked`, { as: 'alice' })).body.requests.length).toBe(1);

    const rv = '/v1/revocations';
    expect((await call('POST', rv, rv, { as: 'alice', body: { user: 'dave' } })).status).toBe(403);
    expect((await call('POST', rv, rv, { as: 'erin', body: { user: 'dave', serial: '1' } })).status).toBe(400);
    expect((await call('POST', rv, rv, { as: 'erin', body: { serial: '999999' } })).status).toBe(404);
    expect((await call('POST', rv, rv, { body: { user: 'dave' } })).status).toBe(401);
    const all = await call('POST', rv, rv, { as: 'erin', body: { user: 'alice', reason: 'laptop lost' } });
    expect(all.body.revoked.length).toBeGreaterThan(0);

    const fingerprint = 'SHA256:' + 'A'.repeat(43);
    expect((await call('POST', rv, rv, { as: 'erin', body: { fingerprint, reason: 'stolen' } })).status).toBe(200);
    const lift = '/v1/revocations/lift';
    expect((await call('POST', lift, lift, { as: 'bob', body: { fingerprint } })).status).toBe(403);
    expect((await call('POST', lift, lift, { as: 'erin', body: { fingerprint: 'nope' } })).status).toBe(400);
    expect((await call('POST', lift, lift, { body: { fingerprint } })).status).toBe(401);
    expect((await call('POST', lift, lift, { as: 'erin', body: { fingerprint, reason: 'found' } })).body).toEqual({ lifted: { fingerprint } });
    expect((await call('POST', lift, lift, { as: 'erin', body: { fingerprint } })).status).toBe(404);
  });

  it('ok/what hosts fetch: CA lines, KRL with ETag, host config', async () => {
    const ca = await call('GET', '/v1/ca', '/v1/ca');
    expect(ca.text).toMatch(/^ssh-ed25519 /);
    const krl = await call('GET', '/v1/krl', '/v1/krl');
    expect(krl.status).toBe(200);
    const etag = krl.headers.get('etag')!;
    expect((await call('GET', '/v1/krl', '/v1/krl', { headers: { 'if-none-match': etag } })).status).toBe(304);
    const hc = '/v1/host-config';
    const host = { headers: { authorization: `Bearer ${TEST_HOST_TOKEN}` } };
    expect((await call('GET', hc, `${hc}?target=prod-db`, host)).body.principals.readonly).toEqual(['readonly@prod-db']);
    expect((await call('GET', hc, `${hc}?target=prod-db&format=plain`, host)).text).toContain('readonly@prod-db');
    expect((await call('GET', hc, hc, host)).status).toBe(400);
    expect((await call('GET', hc, `${hc}?target=prod-db&format=xml`, host)).status).toBe(400);
    expect((await call('GET', hc, `${hc}?target=nowhere`, host)).status).toBe(404);
    expect((await call('GET', hc, `${hc}?target=prod-db`)).status).toBe(401);
  });

  it('ok/host certificates: host CA lines, enrolment, renewal challenge, renewal, and their errors', async () => {
    expect((await call('GET', '/v1/ca', '/v1/ca?type=host')).text).toMatch(/^ssh-ed25519 /);
    expect((await call('GET', '/v1/ca', '/v1/ca?type=host&format=json')).body.keys).toHaveLength(1);
    expect((await call('GET', '/v1/ca', '/v1/ca?type=other')).status).toBe(400);
    const key = generateKey(env.dir, 'openapi-host-key', 'ed25519');
    const { token } = createHostToken(env.dataDir, { target: 'prod-db', ttlSeconds: 600 });
    const en = '/v1/hosts/enroll';
    expect((await call('POST', en, en, { body: { token, target: 'prod-db', publicKeys: ['nope'] } })).status).toBe(400);
    const enrolled = await call('POST', en, en, { body: { token, target: 'prod-db', publicKeys: [key.publicLine] } });
    expect(enrolled.body.principals).toEqual(['127.0.0.1']);
    expect((await call('POST', en, en, { body: { token, target: 'prod-db', publicKeys: [key.publicLine] } })).status).toBe(401);
    const { token: other } = createHostToken(env.dataDir, { target: 'vault', ttlSeconds: 600 });
    expect((await call('POST', en, `${en}?format=plain`, { body: { token: other, target: 'prod-db', publicKeys: [key.publicLine] } })).status).toBe(403);
    const ch = '/v1/hosts/challenge';
    expect((await call('POST', ch, `${ch}?format=xml`)).status).toBe(400);
    const c1 = (await call('POST', ch, `${ch}?format=plain`)).text.trim();
    const rn = '/v1/hosts/renew';
    const certificate = enrolled.body.certificates[0].certificate;
    const signature = sshKeygenSign(key.path, c1, 'jit-ssh-host');
    const renewed = await call('POST', rn, rn, { body: { challenge: c1, renewals: [{ certificate, signature }] } });
    expect(renewed.body.certificates).toHaveLength(1);
    expect((await call('POST', rn, rn, { body: { challenge: c1, renewals: [{ certificate, signature }] } })).status).toBe(401);
    expect((await call('POST', rn, rn, { body: { challenge: c1 } })).status).toBe(400);
    const c2 = (await call('POST', ch, ch)).body.challenge;
    const otherKey = generateKey(env.dir, 'openapi-other-key', 'ed25519');
    const forged = { challenge: c2, renewals: [{ certificate, signature: sshKeygenSign(otherKey.path, c2, 'jit-ssh-host') }] };
    expect((await call('POST', rn, `${rn}?format=plain`, { body: forged })).status).toBe(401);
  });

  it('ok/targets, audit feed, openapi.json, healthz, metrics', async () => {
    // carol, not alice: the admin revocation above also ended alice's sessions.
    const t = await call('GET', '/v1/targets', '/v1/targets', { as: 'carol' });
    expect(t.body.map((x: Json) => x.target)).toContain('prod-db');
    expect((await call('GET', '/v1/targets', '/v1/targets')).status).toBe(401);
    const audit = await call('GET', '/v1/audit', '/v1/audit?after=0&limit=5', { as: 'erin' });
    expect(audit.body.records.length).toBe(5);
    expect((await call('GET', '/v1/audit', '/v1/audit', { as: 'carol' })).status).toBe(403);
    expect((await call('GET', '/v1/audit', '/v1/audit?after=-1', { as: 'erin' })).status).toBe(400);
    expect((await call('GET', '/v1/audit', '/v1/audit')).status).toBe(401);
    const served = await call('GET', '/v1/openapi.json', '/v1/openapi.json');
    expect(served.body).toEqual(DOC);
    expect((await call('GET', '/healthz', '/healthz')).body.ok).toBe(true);
    expect((await call('GET', '/metrics', '/metrics')).text).toMatch(/^# (HELP|TYPE) /m);
  });

  it('ok/every documented operation was exercised, with a success and (where documented) an error', () => {
    for (const op of documentedOperations()) {
      const [method, path] = op.split(' ');
      const documented = Object.keys(DOC.paths[path][method.toLowerCase()].responses).map(Number);
      const statuses = seen.filter((s) => s.op === op).map((s) => s.status);
      expect(statuses.some((s) => s < 400), `${op}: no success case exercised`).toBe(true);
      if (documented.some((s) => s >= 400)) expect(statuses.some((s) => s >= 400), `${op}: no error case exercised`).toBe(true);
    }
  });
});

describe('docs/openapi.yaml is a document', () => {
  it('ok/OpenAPI 3.1 with the package version', () => {
    expect(DOC.openapi).toMatch(/^3\.1\.\d+$/);
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(DOC.info.version).toBe(pkg.version);
  });
});
