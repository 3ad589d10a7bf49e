/**
 * Issue 11.9: GET /v1/host-config lists a target's accounts (and, with {user} principals, every
 * user name), so by default it answers only to a host token. The attack: enumerate targets and
 * accounts without credentials. It must fail the same way for a target that exists and one that
 * does not.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { api, makeEnv, startTestDaemon, TEST_HOST_TOKEN, type TestEnv } from '../helpers/daemon.js';

const WEB_ONLY = 'web-hosts-token-0123456789abcdefghij';
const sha = (t: string) => createHash('sha256').update(t).digest('hex');

describe('host config needs a host credential', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  beforeAll(async () => {
    // makeEnv already configures TEST_HOST_TOKEN for every target; add one scoped to prod-web.
    env = makeEnv();
    const { readFileSync, writeFileSync } = await import('node:fs');
    writeFileSync(
      env.configPath,
      readFileSync(env.configPath, 'utf8').replace('hostTokens: [', `hostTokens: [{ name: web, sha256: "${sha(WEB_ONLY)}", targets: [prod-web] }, `),
    );
    d = await startTestDaemon(env);
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  it('fail/without a token: 401 for a real target and for a made-up one alike (no enumeration)', async () => {
    const real = await api(d.url, 'GET', '/v1/host-config?target=prod-db');
    const fake = await api(d.url, 'GET', '/v1/host-config?target=no-such-target');
    for (const r of [real, fake]) {
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe('unauthenticated');
      expect(r.body.error.message).toContain('host token');
      expect(JSON.stringify(r.body)).not.toContain('postgres');
    }
    expect(real.body).toEqual(fake.body);
  });

  it('fail/a wrong token, a user session-style token, or a token scoped to another target: 401', async () => {
    for (const token of ['wrong-token', TEST_HOST_TOKEN + 'x', 'jit_' + 'A'.repeat(43)]) {
      expect((await api(d.url, 'GET', '/v1/host-config?target=prod-db', undefined, token)).status).toBe(401);
    }
    expect((await api(d.url, 'GET', '/v1/host-config?target=prod-db', undefined, WEB_ONLY)).status).toBe(401);
  });

  it('ok/the configured host token (stored as sha256) reads it; a scoped one reads its own target', async () => {
    const r = await api(d.url, 'GET', '/v1/host-config?target=prod-db', undefined, TEST_HOST_TOKEN);
    expect(r.status).toBe(200);
    expect(Object.keys(r.body.principals).sort()).toEqual(['deploy', 'postgres', 'readonly']);
    expect((await api(d.url, 'GET', '/v1/host-config?target=prod-web', undefined, WEB_ONLY)).status).toBe(200);
    expect((await api(d.url, 'GET', '/v1/host-config?target=no-such-target', undefined, TEST_HOST_TOKEN)).status).toBe(404);
  });
});

describe('publicHostConfig: true is an explicit opt-in', () => {
  it('ok/anyone reads host config when the operator chose so', async () => {
    const env = makeEnv({ config: 'publicHostConfig: true\n' });
    const d = await startTestDaemon(env);
    try {
      expect((await api(d.url, 'GET', '/v1/host-config?target=prod-db')).status).toBe(200);
    } finally {
      await d.close();
      env.cleanup();
    }
  });
});
