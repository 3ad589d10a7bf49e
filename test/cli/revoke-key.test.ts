/**
 * `jit-ssh revoke SHA256:…` (admin) revokes a public key until `jit-ssh revoke --lift SHA256:…`
 * (issue 11.4), through the built CLI against a real daemon.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parsePublicKey } from '../../src/ca/keys.js';
import type { RunningDaemon } from '../../src/daemon.js';
import { api, login, makeEnv, startTestDaemon, subjectKey, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';
import { baseEnv, ensureBuilt, runCli } from './run-cli.js';

describeWithTools(['ssh-keygen'], 'jit-ssh revoke <key fingerprint> [--lift]', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  const as = (user: string) => {
    const home = join(env.dir, `home-${user}`);
    mkdirSync(home, { recursive: true });
    return baseEnv(home, { JITSSH_SERVER: d.url, JITSSH_USER: user, JITSSH_IDENTITY: env.keys[user].path });
  };

  beforeAll(async () => {
    ensureBuilt();
    env = makeEnv();
    d = await startTestDaemon(env);
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  it('ok/an admin revokes a key (issuance refused), a non-admin cannot lift it, the admin lifts it (issuance works again)', async () => {
    const key = subjectKey(env, 'laptop');
    const fp = parsePublicKey(key.publicLine).fingerprint;
    const request = async () =>
      (await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: key.publicLine }, await login(d.url, 'alice', env.keys.alice))).status;
    expect(await request()).toBe(201);

    const revoked = await runCli(['revoke', fp, '--reason', 'laptop stolen'], as('erin'));
    expect(revoked.stderr).toBe('');
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain(`revoked key ${fp} and 1 grant(s)`);
    expect(revoked.stdout).toContain(`jit-ssh revoke --lift ${fp}`);
    expect(await request()).toBe(403);

    const denied = await runCli(['revoke', '--lift', fp], as('alice'));
    expect(denied.code).toBe(2); // forbidden
    expect(denied.stderr).toMatch(/admin/);
    expect(await request()).toBe(403);

    const bad = await runCli(['revoke', '--lift', '12345'], as('erin'));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/fingerprint/);

    const lifted = await runCli(['revoke', '--lift', fp, '--reason', 'found it'], as('erin'));
    expect(lifted.code).toBe(0);
    expect(lifted.stdout).toContain(`lifted the revocation of key ${fp}`);
    expect(await request()).toBe(201);
  });
});
