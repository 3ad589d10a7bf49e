/**
 * Hostile input, generated: fast-check cases across every endpoint that takes input — malformed
 * and truncated key blobs, refused key types, principal injection through account and target
 * names, TTL forms, oversized bodies, wrong JSON types, unknown fields, forged / replayed /
 * expired SSHSIG challenges and tokens, self-approval and approval outside one's rule. Each must
 * be the right 4xx with an error code; no 5xx ever; the daemon healthy after; no certificate
 * issued for any of them (the audit has no 'issue' record at all).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createSigner } from '../../src/ca/signer.js';
import { decodeOpenSshPrivateKey } from '../../src/ca/openssh-key.js';
import { signSshSig } from '../../src/ca/sshsig.js';
import { startDaemon, type RunningDaemon } from '../../src/daemon.js';
import type { Signer } from '../../src/ca/types.js';
import { api, makeEnv, type TestEnv } from '../helpers/daemon.js';
import { generateKey } from '../helpers/keys.js';
import { describeWithTools } from '../helpers/tools.js';
import { captureLog, expectNoSecrets, freshPublicLine, readAudit, privateKeySecrets, signatureSecrets, staticTokens, type Tokens } from './support.js';

interface Outcome {
  status: number;
  code: string;
}

describeWithTools(['ssh-keygen'], 'reliability: hostile input (fast-check)', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let tokens: Tokens;
  let now = Date.now();
  const clock = { now: () => now };
  const capture = captureLog();
  const signers: Record<string, Signer> = {};
  const secrets: string[] = [];
  const seen: Outcome[] = [];
  const good = freshPublicLine('good@rel');
  const goodBlob = Buffer.from(good.split(' ')[1], 'base64');
  let refusedKeys: string[] = [];

  /** Sends one hostile request and checks the shape of the refusal; records it for the totals. */
  async function hostile(
    method: string,
    path: string,
    body: unknown,
    token: string | undefined,
    want: { status: readonly number[]; code: readonly string[] },
    headers: Record<string, string> = {},
  ): Promise<void> {
    const res = await fetch(d.url + path, {
      method,
      headers: {
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: { error?: { code?: unknown; message?: unknown } } = {};
    try {
      parsed = JSON.parse(text);
    } catch {
      // checked below: every refusal is JSON
    }
    const code = String(parsed.error?.code);
    seen.push({ status: res.status, code });
    const where = `${method} ${path} ${typeof body === 'string' ? body.slice(0, 120) : JSON.stringify(body)?.slice(0, 120)}`;
    expect(res.status, where).toBeLessThan(500);
    expect(want.status, `${where} → ${res.status} ${text.slice(0, 200)}`).toContain(res.status);
    expect(want.code, `${where} → ${text.slice(0, 200)}`).toContain(code);
    expect(typeof parsed.error?.message).toBe('string');
    expect(text).not.toMatch(/cert-v01@openssh\.com|"certificate"|at \S+\.[jt]s:\d+/);
  }

  const request = (over: Record<string, unknown>) => ({ target: 'prod-db', task: 'check-logs', publicKey: good, ...over });
  const alice = () => tokens.byUser.alice;

  beforeAll(async () => {
    tokens = staticTokens(['alice', 'bob', 'carol', 'dave', 'erin', 'mallory']);
    // Thousands of generated requests from one user: the per-user limits would answer 429 first.
    env = makeEnv({ tokens: tokens.yaml, config: 'limits: { requestsPerMinute: 100000, liveCertificates: 100000, pendingRequests: 10000 }' });
    d = await startDaemon({ configPath: env.configPath, log: capture.log, clock });
    for (const [u, k] of Object.entries(env.keys)) {
      signers[u] = createSigner(decodeOpenSshPrivateKey(k.privateText));
      secrets.push(...privateKeySecrets(k.privateText));
    }
    secrets.push(...Object.values(tokens.byUser));
    refusedKeys = [generateKey(env.dir, 'dsa', 'dsa').publicLine, generateKey(env.dir, 'rsa2k', 'rsa2048').publicLine];
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  it('fail/malformed, truncated and mistyped key blobs → 400 invalid_key', async () => {
    const blob = fc.oneof(
      fc.integer({ min: 0, max: goodBlob.length - 1 }).map((n) => goodBlob.subarray(0, n)),
      fc.uint8Array({ minLength: 1, maxLength: 64 }).map((extra) => Buffer.concat([goodBlob, Buffer.from(extra)])),
      fc.integer({ min: 0, max: 0xffffffff }).filter((n) => n !== 11).map((n) => {
        const b = Buffer.from(goodBlob);
        b.writeUInt32BE(n, 0); // the type string's length lies
        return b;
      }),
      fc.uint8Array({ minLength: 1, maxLength: 300 }).map((u) => Buffer.from(u)),
    );
    const type = fc.constantFrom('ssh-ed25519', 'ssh-rsa', 'ssh-dss', 'ecdsa-sha2-nistp256', 'sk-ssh-ed25519@openssh.com', 'ssh-ed25519-cert-v01@openssh.com');
    const line = fc.oneof(
      fc.tuple(type, blob).map(([t, b]) => `${t} ${b.toString('base64')}`),
      // Right blob, wrong type word.
      fc.constantFrom('ssh-rsa', 'ssh-dss', 'ecdsa-sha2-nistp384', 'ssh-ed448', 'x').map((t) => `${t} ${goodBlob.toString('base64')}`),
      // Not base64 at all, or no blob.
      fc.string({ minLength: 1, maxLength: 80 }).filter((s) => !/\s/.test(s)).map((s) => `ssh-ed25519 ${s}!`),
      fc.constantFrom('ssh-ed25519', 'ssh-ed25519 ', ' ', 'AAAA', 'ssh-ed25519 ====', `${good}\n${good}`),
    );
    await fc.assert(
      fc.asyncProperty(line, async (publicKey) => {
        await hostile('POST', '/v1/requests', request({ publicKey }), alice(), { status: [400], code: ['invalid_key'] });
      }),
      { numRuns: 60 },
    );
  });

  it('fail/refused key types and sizes (DSA, RSA 2048, the CA key), with comment and spacing variants → 400 invalid_key', async () => {
    const variant = fc.tuple(
      fc.constantFrom(...refusedKeys, d.deps.ca.active().publicKeyLine),
      fc.constantFrom('', ' ', '  extra comment', '\t'),
    );
    await fc.assert(
      fc.asyncProperty(variant, async ([key, tail]) => {
        await hostile('POST', '/v1/requests', request({ publicKey: key + tail }), alice(), { status: [400], code: ['invalid_key'] });
      }),
      { numRuns: 12 },
    );
  });

  it('fail/principal injection through account and target names → 400 invalid_field', async () => {
    const bad = fc.constantFrom(',', '*', '\n', '\r', '\u0000', ' ', '\t', '@', '/', ':', '"', '\u2028', 'é', '%00', '\\');
    const injected = fc
      .tuple(fc.constantFrom('readonly', 'prod-db', 'root', ''), bad, fc.constantFrom('root', 'prod-web', '*', ''))
      .map(([a, b, c]) => a + b + c);
    const long = fc.integer({ min: 64, max: 5000 }).map((n) => 'a'.repeat(n));
    const name = fc.oneof(injected, long, fc.constant(''), fc.constant('-leading-dash'), fc.constant('.hidden'));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('account', 'target', 'task'), name, async (field, value) => {
        await hostile('POST', '/v1/requests', request({ [field]: value }), alice(), { status: [400], code: ['invalid_field'] });
      }),
      { numRuns: 40 },
    );
  });

  it('fail/TTL forms: malformed → 400 invalid_ttl; well-formed but over the maximum → 403 policy_denied', async () => {
    const malformed = fc.oneof(
      fc.constantFrom('1e309', '15 m', ' 15m', '15m ', '-15m', '15M', '1.5h', '15mm', 'm', '0', '0s', 'Infinity', 'NaN', '٣m', '1h1h', '15m1h', '0x10', '+15m', '1e3', '31d'),
      fc.integer({ min: -1_000_000, max: 0 }),
      fc.double({ noNaN: true, min: 0.001, max: 1e6 }).filter((x) => !Number.isInteger(x)),
      fc.constantFrom(1e12, 1e308, Number.MAX_SAFE_INTEGER + 2, 30 * 86_400 + 1),
    );
    const overMax = fc.oneof(
      fc.integer({ min: 31, max: 600 }).map((m) => `${m}m`),
      fc.integer({ min: 1801, max: 30 * 86_400 }),
      fc.constantFrom('1h', '2h30m', '1d', '30d'),
    );
    await fc.assert(
      fc.asyncProperty(malformed, async (ttl) => {
        await hostile('POST', '/v1/requests', request({ ttl }), alice(), { status: [400], code: ['invalid_ttl'] });
      }),
      { numRuns: 30 },
    );
    await fc.assert(
      fc.asyncProperty(overMax, async (ttl) => {
        await hostile('POST', '/v1/requests', request({ ttl }), alice(), { status: [403], code: ['policy_denied'] });
      }),
      { numRuns: 15 },
    );
  });

  it('fail/wrong JSON types, unknown fields and non-object bodies → 400', async () => {
    const wrong = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }), fc.dictionary(fc.string(), fc.string(), { maxKeys: 2 }));
    const field = fc.constantFrom('target', 'task', 'publicKey', 'account', 'reason', 'ticket', 'ttl');
    const known = new Set(['target', 'task', 'publicKey', 'account', 'reason', 'ticket', 'ttl']);
    const unknownName = fc.oneof(
      fc.constantFrom('principals', 'serial', 'validBefore', 'criticalOptions', 'extensions', 'keyId', 'user', 'status', 'certificate', '__proto__', 'constructor'),
      fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !known.has(s)),
    );
    const body = fc.oneof(
      fc.tuple(field, wrong).filter(([f, v]) => !(f === 'ttl' && typeof v === 'number')).map(([f, v]) => ({ kind: 'type', body: JSON.stringify(request({ [f]: v })) })),
      fc.tuple(unknownName, fc.jsonValue()).map(([k, v]) => ({ kind: 'unknown', body: JSON.stringify(request({})).replace(/^\{/, `{${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'},`) })),
      fc.constantFrom('[]', '[{"target":"prod-db"}]', 'null', '"prod-db"', '42', 'true', '{"target":', '{}', '{"target":"prod-db","target":"prod-web"', '\u0000').map((b) => ({ kind: 'shape', body: b })),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('/v1/requests', '/v1/auth/challenge', '/v1/auth/token'), body, async (path, b) => {
        const token = path === '/v1/requests' ? alice() : undefined;
        await hostile('POST', path, b.body, token, { status: [400], code: ['invalid_field', 'bad_request'] });
      }),
      { numRuns: 40 },
    );
  });

  it('fail/oversized bodies on every POST endpoint → 413 body_too_large', async () => {
    const pending = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'incident', ticket: 'INC-9', publicKey: good }, tokens.byUser.dave);
    expect(pending.status).toBe(202);
    const paths = ['/v1/requests', '/v1/auth/challenge', '/v1/auth/token', `/v1/requests/${pending.body.id}/approve`, `/v1/requests/${pending.body.id}/deny`, '/v1/revocations'];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...paths), fc.integer({ min: 65 * 1024, max: 2 * 1024 * 1024 }), async (path, size) => {
        const body = JSON.stringify({ reason: 'x'.repeat(size) });
        await hostile('POST', path, body, tokens.byUser.bob, { status: [413], code: ['body_too_large'] });
      }),
      { numRuns: 10 },
    );
  });

  it('fail/forged, malformed and expired bearer tokens → 401 unauthenticated on every authenticated endpoint', async () => {
    const forged = fc.oneof(
      fc.string({ minLength: 1, maxLength: 100 }).map((s) => s.replace(/[^!-~]/g, 'x')),
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map((u) => `jit_${Buffer.from(u).toString('base64url')}`),
      fc.constantFrom(...Object.values(tokens.byUser)).map((t) => t.slice(0, -1) + (t.endsWith('A') ? 'B' : 'A')),
      fc.constantFrom(...Object.values(tokens.byUser)).map((t) => t.toUpperCase()),
      fc.constant('x'.repeat(513)),
    );
    const endpoint = fc.constantFrom(
      ['POST', '/v1/requests', request({})],
      ['GET', '/v1/requests', undefined],
      ['GET', '/v1/targets', undefined],
      ['GET', '/v1/audit', undefined],
      ['POST', '/v1/revocations', { user: 'alice' }],
    ) as fc.Arbitrary<[string, string, unknown]>;
    await fc.assert(
      fc.asyncProperty(endpoint, forged, async ([m, p, b], token) => {
        await hostile(m, p, b, token, { status: [401], code: ['unauthenticated'] });
      }),
      { numRuns: 30 },
    );
    // Not Bearer at all.
    for (const h of ['Basic YWxpY2U6cHc=', `bearer ${alice()}`, `Bearer  ${alice()}`, `Bearer ${alice()} x`, 'Bearer', `Token ${alice()}`]) {
      await hostile('POST', '/v1/requests', request({}), undefined, { status: [401], code: ['unauthenticated'] }, { authorization: h });
    }
    // A real session token, used after it expired.
    const token = await loginAs('erin');
    expect((await api(d.url, 'GET', '/v1/targets', undefined, token)).status).toBe(200);
    now += (d.deps.config.tokenTtl + 1) * 1000;
    try {
      await hostile('GET', '/v1/targets', undefined, token, { status: [401], code: ['unauthenticated'] });
      await hostile('POST', '/v1/requests', request({}), token, { status: [401], code: ['unauthenticated'] });
    } finally {
      now = Date.now() + (d.deps.config.tokenTtl + 1) * 1000;
    }
  });

  const challengeFor = async (user: string): Promise<string> => {
    const r = await api(d.url, 'POST', '/v1/auth/challenge', { user });
    expect(r.status).toBe(200);
    return r.body.challenge as string;
  };
  const sign = async (user: string, message: string, namespace = 'jit-ssh'): Promise<string> => {
    const s = await signSshSig(Buffer.from(message, 'utf8'), signers[user], namespace);
    secrets.push(...signatureSecrets(s));
    return s;
  };
  async function loginAs(user: string): Promise<string> {
    const challenge = await challengeFor(user);
    const r = await api(d.url, 'POST', '/v1/auth/token', { user, challenge, signature: await sign(user, challenge) });
    expect(r.status).toBe(200);
    secrets.push(r.body.token);
    return r.body.token;
  }

  it('fail/forged, replayed and expired SSHSIG challenges → 401 unauthenticated', async () => {
    const forgery = fc.constantFrom('other-key', 'wrong-namespace', 'altered-message', 'other-users-challenge', 'made-up-challenge', 'replay', 'expired', 'garbage-armor', 'truncated-armor', 'unknown-user');
    await fc.assert(
      fc.asyncProperty(forgery, fc.constantFrom('alice', 'dave', 'mallory'), async (kind, user) => {
        let body: { user: string; challenge: string; signature: string };
        const challenge = await challengeFor(user);
        switch (kind) {
          case 'other-key':
            body = { user, challenge, signature: await sign(user === 'alice' ? 'bob' : 'alice', challenge) };
            break;
          case 'wrong-namespace':
            body = { user, challenge, signature: await sign(user, challenge, 'file') };
            break;
          case 'altered-message':
            body = { user, challenge, signature: await sign(user, challenge + 'x') };
            break;
          case 'other-users-challenge': {
            const theirs = await challengeFor('carol');
            body = { user, challenge: theirs, signature: await sign(user, theirs) };
            break;
          }
          case 'made-up-challenge': {
            const fake = challenge.replace(/.{4}$/, 'AAAA');
            body = { user, challenge: fake, signature: await sign(user, fake) };
            break;
          }
          case 'replay': {
            const signature = await sign(user, challenge);
            const first = await api(d.url, 'POST', '/v1/auth/token', { user, challenge, signature });
            expect(first.status).toBe(200);
            secrets.push(first.body.token);
            body = { user, challenge, signature };
            break;
          }
          case 'expired': {
            const signature = await sign(user, challenge);
            now += 61_000;
            body = { user, challenge, signature };
            break;
          }
          case 'garbage-armor':
            body = { user, challenge, signature: `-----BEGIN SSH SIGNATURE-----\n${Buffer.from('SSHSIG garbage').toString('base64')}\n-----END SSH SIGNATURE-----` };
            break;
          case 'truncated-armor': {
            const s = await sign(user, challenge);
            body = { user, challenge, signature: s.slice(0, Math.floor(s.length / 2)) };
            break;
          }
          default:
            body = { user: 'nobody', challenge, signature: await sign(user, challenge) };
        }
        await hostile('POST', '/v1/auth/token', body, undefined, { status: [401], code: ['unauthenticated'] });
      }),
      { numRuns: 30 },
    );
  });

  it('fail/self-approval, approval outside one\'s rule, deciding twice, bad ids → 403/404/409', async () => {
    // dave (dba) asks for an incident: rule incident-with-approval, approvers sre-leads.
    // carol (sre-leads and sre) asks too: she may approve others, never herself.
    const ask = async (user: string, target = 'prod-db') => {
      const r = await api(d.url, 'POST', '/v1/requests', { target, task: 'incident', ticket: 'INC-42', publicKey: good }, tokens.byUser[user]);
      expect(r.status).toBe(202);
      return r.body.id as string;
    };
    const daves = await ask('dave');
    const carols = await ask('carol');
    const denied = await ask('dave');
    const deniedOk = await api(d.url, 'POST', `/v1/requests/${denied}/deny`, { reason: 'no' }, tokens.byUser.bob);
    expect(deniedOk.status).toBe(200);
    const cases = fc.constantFrom(
      { who: 'dave', id: () => daves, action: 'approve', status: [403], code: ['forbidden'] }, // own request
      { who: 'carol', id: () => carols, action: 'approve', status: [403], code: ['forbidden'] }, // own request, though an approver
      { who: 'carol', id: () => carols, action: 'deny', status: [403], code: ['forbidden'] },
      { who: 'alice', id: () => daves, action: 'approve', status: [403, 404], code: ['forbidden', 'not_found'] }, // sre, not sre-leads
      { who: 'mallory', id: () => daves, action: 'approve', status: [403, 404], code: ['forbidden', 'not_found'] },
      { who: 'mallory', id: () => daves, action: 'deny', status: [403, 404], code: ['forbidden', 'not_found'] },
      { who: 'bob', id: () => denied, action: 'approve', status: [409], code: ['conflict'] }, // already decided
      { who: 'bob', id: () => 'req_AAAAAAAAAAAAAAAA', action: 'approve', status: [404], code: ['not_found'] },
      { who: 'bob', id: () => '..%2F..%2Fetc', action: 'approve', status: [404], code: ['not_found'] },
      { who: 'bob', id: () => `${daves}x`, action: 'approve', status: [404], code: ['not_found'] },
    );
    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
        const body = c.action === 'deny' ? { reason: 'because' } : {};
        await hostile('POST', `/v1/requests/${c.id()}/${c.action}`, body, tokens.byUser[c.who], { status: c.status, code: c.code });
      }),
      { numRuns: 20 },
    );
    // Nothing above moved them: both still pending.
    for (const [id, user] of [
      [daves, 'dave'],
      [carols, 'carol'],
    ]) {
      expect((await api(d.url, 'GET', `/v1/requests/${id}`, undefined, tokens.byUser[user])).body.status).toBe('pending');
    }
  });

  it('ok/after every case: ≥ 200 cases, each a 4xx with a code, 0 × 5xx, healthy, no certificate issued', async () => {
    expect(seen.length).toBeGreaterThanOrEqual(200);
    expect(seen.filter((o) => o.status >= 500)).toEqual([]);
    expect(seen.filter((o) => o.status < 400 || !/^[a-z]+(_[a-z]+)*$/.test(o.code))).toEqual([]);
    expect((await api(d.url, 'GET', '/healthz')).status).toBe(200);
    expect(readAudit(env.dataDir).filter((r) => r.type === 'issue')).toEqual([]);
    const counts: Record<string, number> = {};
    for (const o of seen) counts[`${o.status} ${o.code}`] = (counts[`${o.status} ${o.code}`] ?? 0) + 1;
    console.info(`hostile cases: ${seen.length}`, counts);
  });

  it('secrets: the log and the audit hold no private key, token or signature', () => {
    expectNoSecrets({ log: capture.text(), 'audit.jsonl': readAudit(env.dataDir).map((r) => JSON.stringify(r)).join('\n') }, secrets);
  });
});
