/**
 * POST /v1/auth/oidc and GET /v1/auth/methods against a real OpenID Provider (oidc-provider on
 * 127.0.0.1) and a real daemon: good tokens become sessions with IdP ∪ policy groups; every
 * forged or wrong token gets the same 401 and an auth_failure audit record; an IdP that is down
 * makes SSO answer 503 while SSH-key logins go on; keys rotated at the IdP are picked up.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { exportSPKI, SignJWT } from 'jose';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../../src/daemon.js';
import { api, login, makeEnv, subjectKey, type TestEnv } from '../helpers/daemon.js';
import { newSigningKey, startIdp, type IdpAccount, type TestIdp } from '../helpers/idp.js';
import { describeWithTools } from '../helpers/tools.js';

const ACCOUNTS: Record<string, IdpAccount> = {
  alice: { preferred_username: 'alice', groups: ['idp-staff'] },
  zoe: { preferred_username: 'zoe', groups: ['oncall'] },
};

function oidcConfig(issuer: string): string {
  return `oidc:\n  issuer: ${issuer}\n  clientId: jit-ssh-cli\n  scopes: [openid, profile, email, groups]\n`;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function auditLines(env: TestEnv): Record<string, unknown>[] {
  return readFileSync(join(env.dataDir, 'audit.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A daemon with SSO on `issuer`; mallory is disabled in its policy (SSO must not bring her back). */
async function ssoDaemon(issuer: string): Promise<{ env: TestEnv; d: RunningDaemon }> {
  const env = makeEnv({ config: oidcConfig(issuer) });
  const policy = readFileSync(env.policyPath, 'utf8');
  writeFileSync(env.policyPath, policy.replace('  mallory:\n    groups: [interns]\n', '  mallory:\n    groups: [interns]\n    disabled: true\n'));
  expect(readFileSync(env.policyPath, 'utf8')).toContain('disabled: true');
  // No JWKS refetch cooldown: rotation and outage tests need the refetch at once.
  return { env, d: await startDaemon({ configPath: env.configPath, log: pino({ level: 'silent' }), jwksCooldownMs: 0 }) };
}

async function stopAll(d?: RunningDaemon, idp?: TestIdp, env?: TestEnv): Promise<void> {
  await d?.close();
  await idp?.close();
  env?.cleanup();
}

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

describeWithTools(['ssh-keygen'], 'SSO: POST /v1/auth/oidc with a real IdP', () => {
  let idp: TestIdp;
  let env: TestEnv;
  let d: RunningDaemon;

  beforeAll(async () => {
    idp = await startIdp({ accounts: ACCOUNTS });
    ({ env, d } = await ssoDaemon(idp.issuer));
  });
  afterAll(() => stopAll(d, idp, env));

  it('ok/methods: says which logins exist, without the client secret', async () => {
    const r = await api(d.url, 'GET', '/v1/auth/methods');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ sshKey: true, oidc: { issuer: idp.issuer, clientId: 'jit-ssh-cli', scopes: ['openid', 'profile', 'email', 'groups'] } });
  });

  it('ok/login: a policy user gets IdP groups ∪ policy groups, and the bearer carries them', async () => {
    const idToken = await idp.signIdToken({ sub: 'alice-sub', preferred_username: 'alice', groups: ['idp-staff'] });
    const r = await api(d.url, 'POST', '/v1/auth/oidc', { idToken });
    expect(r.status).toBe(200);
    expect(r.body.user).toBe('alice');
    expect(r.body.groups).toEqual(['idp-staff', 'oncall', 'sre']);
    expect(r.body.token).toMatch(/^jit_/);
    const targets = await api(d.url, 'GET', '/v1/targets', undefined, r.body.token);
    expect(targets.status).toBe(200);
    const rec = auditLines(env).filter((a) => a.type === 'auth' && a.method === 'oidc').at(-1);
    expect(rec).toMatchObject({ user: 'alice', issuer: idp.issuer, subject: 'alice-sub', groups: ['idp-staff', 'oncall', 'sre'] });
    expect(readFileSync(join(env.dataDir, 'audit.jsonl'), 'utf8')).not.toContain(idToken.split('.')[2]);
  });

  it('ok/sso-only user: no users: entry, IdP group oncall → auto-issued certificate', async () => {
    const idToken = await idp.signIdToken({ sub: 'zoe-sub', preferred_username: 'zoe', groups: ['oncall'] }, { key: idp.keys[1] });
    const r = await api(d.url, 'POST', '/v1/auth/oidc', { idToken });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ user: 'zoe', groups: ['oncall'] });
    const key = subjectKey(env, 'zoe_subject');
    const req = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: key.publicLine }, r.body.token);
    expect(req.status, JSON.stringify(req.body)).toBe(201);
    expect(req.body.keyId).toContain('zoe');
  });

  it('ok/email fallback: no preferred_username, verified email → its local part', async () => {
    const idToken = await idp.signIdToken({ sub: 'e1', preferred_username: undefined, email: 'frank@example.com', email_verified: true });
    const r = await api(d.url, 'POST', '/v1/auth/oidc', { idToken });
    expect(r.status).toBe(200);
    expect(r.body.user).toBe('frank');
  });

  it('fail/no idToken: 400 naming the field', async () => {
    const r = await api(d.url, 'POST', '/v1/auth/oidc', {});
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('idToken');
  });

  describe('every bad token: the same 401, an auth_failure record, no session', () => {
    const now = () => Math.floor(Date.now() / 1000);
    const cases: [string, () => Promise<string>][] = [
      ['alg none', async () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: idp.issuer, aud: idp.clientId, sub: 'alice', preferred_username: 'alice', iat: now(), exp: now() + 300 })}.`],
      [
        'HS256 with the public key as secret',
        async () => {
          const secret = Buffer.from(await exportSPKI(await crypto.subtle.importKey('jwk', idp.keys[0].publicJwk as JsonWebKey, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, true, ['verify'])));
          return new SignJWT({ iss: idp.issuer, aud: idp.clientId, sub: 'alice', preferred_username: 'alice', iat: now(), exp: now() + 300 })
            .setProtectedHeader({ alg: 'HS256', kid: idp.keys[0].kid })
            .sign(secret);
        },
      ],
      ['key not in the JWKS', async () => idp.signIdToken({}, { key: await newSigningKey('RS256') })],
      ['key not in the JWKS, with a known kid', async () => idp.signIdToken({}, { key: { ...(await newSigningKey('RS256')), kid: idp.keys[0].kid } })],
      [
        'tampered payload',
        async () => {
          const [h, , s] = (await idp.signIdToken({ groups: ['idp-staff'] })).split('.');
          return `${h}.${b64({ iss: idp.issuer, aud: idp.clientId, sub: 'alice', preferred_username: 'alice', groups: ['admins'], iat: now(), exp: now() + 300 })}.${s}`;
        },
      ],
      ['expired', async () => idp.signIdToken({ iat: now() - 400, exp: now() - 120 })],
      ['nbf in the future', async () => idp.signIdToken({ nbf: now() + 300 })],
      ['iat too old', async () => idp.signIdToken({ iat: now() - 20 * 60, exp: now() + 300 })],
      ['iat in the future', async () => idp.signIdToken({ iat: now() + 300, exp: now() + 600 })],
      ['no iat', async () => idp.signIdToken({ iat: undefined })],
      ['wrong iss', async () => idp.signIdToken({ iss: 'http://127.0.0.1:1' })],
      ['wrong aud', async () => idp.signIdToken({ aud: 'someone-else' })],
      ['several audiences without azp', async () => idp.signIdToken({ aud: [idp.clientId, 'someone-else'] })],
      ['azp of another client', async () => idp.signIdToken({ aud: [idp.clientId, 'someone-else'], azp: 'someone-else' })],
      ['user name breaks the name rule', async () => idp.signIdToken({ preferred_username: 'alice;rm -rf' })],
      ['user name is an e-mail address', async () => idp.signIdToken({ preferred_username: 'alice@example.com' })],
      ['no user name, unverified email', async () => idp.signIdToken({ preferred_username: undefined, email: 'alice@example.com', email_verified: false })],
      ['groups is a string', async () => idp.signIdToken({ groups: 'admins' })],
      ['groups holds a non-name', async () => idp.signIdToken({ groups: ['sre', '../admins'] })],
      ['groups holds an object', async () => idp.signIdToken({ groups: [{ name: 'admins' }] })],
      ['a disabled policy user', async () => idp.signIdToken({ preferred_username: 'mallory' })],
      ['not a JWT', async () => 'not-a-jwt'],
      ['1 MB token', async () => 'e'.repeat(1 << 20)],
    ];
    let first: unknown;
    for (const [name, make] of cases) {
      it(`fail/${name}`, async () => {
        const idToken = await make();
        const before = auditLines(env).length;
        const r = await api(d.url, 'POST', '/v1/auth/oidc', { idToken });
        expect(r.status).toBe(401);
        expect(r.body.token).toBeUndefined();
        first ??= r.body;
        expect(r.body).toEqual(first);
        const after = auditLines(env).slice(before);
        expect(after).toHaveLength(1);
        expect(after[0]).toMatchObject({ type: 'auth_failure', method: 'oidc', issuer: idp.issuer });
        expect(String(after[0].reason)).not.toBe('');
        expect(JSON.stringify(after[0])).not.toContain(idToken.slice(-20));
      });
    }

    it('fail/replay: the second use of a good token', async () => {
      const idToken = await idp.signIdToken({ sub: 'alice-sub' });
      expect((await api(d.url, 'POST', '/v1/auth/oidc', { idToken })).status).toBe(200);
      const again = await api(d.url, 'POST', '/v1/auth/oidc', { idToken });
      expect(again.status).toBe(401);
      expect(again.body).toEqual(first);
      expect(auditLines(env).at(-1)).toMatchObject({ type: 'auth_failure', method: 'oidc', subject: 'alice-sub', reason: 'token already used (replay)' });
    });
  });

  it('ok/rotation: a key the IdP starts using is fetched on its unknown kid; the retired key stops working', async () => {
    const oldToken = await idp.signIdToken({});
    const fetchesBefore = idp.jwksFetches();
    const [fresh] = await idp.rotateKeys();
    const r = await api(d.url, 'POST', '/v1/auth/oidc', { idToken: await idp.signIdToken({}, { key: fresh }) });
    expect(r.status).toBe(200);
    expect(idp.jwksFetches()).toBeGreaterThan(fetchesBefore);
    expect((await api(d.url, 'POST', '/v1/auth/oidc', { idToken: oldToken })).status).toBe(401);
  });
});

describeWithTools(['ssh-keygen'], 'SSO: the IdP is unreachable when the daemon starts', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let idp: TestIdp | undefined;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    ({ env, d } = await ssoDaemon(`http://127.0.0.1:${port}`));
  });
  afterAll(() => stopAll(d, idp, env));

  it('starts, serves SSH-key logins, answers SSO with 503 idp_unavailable, and recovers when the IdP is back', async () => {
    const token = await login(d.url, 'alice', env.keys.alice);
    expect(token).toMatch(/^jit_/);
    const down = await api(d.url, 'POST', '/v1/auth/oidc', { idToken: 'a.b.c' });
    expect(down.status).toBe(503);
    expect(down.body.error.code).toBe('idp_unavailable');

    idp = await startIdp({ accounts: ACCOUNTS, port });
    await new Promise((r) => setTimeout(r, 1100)); // on-demand rediscovery is at most once a second
    const up = await api(d.url, 'POST', '/v1/auth/oidc', { idToken: await idp.signIdToken({}) });
    expect(up.status).toBe(200);
    expect(up.body.user).toBe('alice');

    // The IdP goes away again: cached keys keep working; a key the daemon has never seen is an outage, not a bad token.
    await idp.close();
    expect((await api(d.url, 'POST', '/v1/auth/oidc', { idToken: await idp.signIdToken({}) })).status).toBe(200);
    const unknownKid = await api(d.url, 'POST', '/v1/auth/oidc', { idToken: await idp.signIdToken({}, { key: await newSigningKey('RS256') }) });
    expect(unknownKid.status).toBe(503);
    expect(unknownKid.body.error.code).toBe('idp_unavailable');
    idp = undefined;
  });
});
