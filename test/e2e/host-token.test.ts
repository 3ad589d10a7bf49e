/**
 * host-setup.sh and the host credential of GET /v1/host-config: without a token it stops with
 * the CA's message before touching the host; with --host-token-file it configures the host.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { startTestDaemon, TEST_HOST_TOKEN, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';
import { HOST_SETUP, makeHostRoot, run, type TestHost } from './helpers/hosts.js';
import { makeE2eEnv } from './helpers/policy.js';

describeWithTools(['sshd', 'ssh-keygen', 'curl'], 'e2e: host-setup.sh presents a host token', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  const hosts: TestHost[] = [];
  beforeAll(async () => {
    env = makeE2eEnv();
    d = await startTestDaemon(env);
  });
  afterAll(async () => {
    await d?.close();
    for (const h of hosts) h.cleanup();
    env?.cleanup();
  });
  const setup = (h: TestHost, extra: string[]) => run('bash', [HOST_SETUP, '--server', d.url, '--target', 'e2e-a', '--root', h.root, ...extra]);

  it('fail/without a host token: stops with the CA message, nothing written', async () => {
    const h = makeHostRoot('notoken');
    hosts.push(h);
    const before = readFileSync(h.sshdConfig, 'utf8');
    const r = await setup(h, []);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('host config needs a host token');
    expect(readFileSync(h.sshdConfig, 'utf8')).toBe(before);
    expect(existsSync(join(h.etc, 'principals'))).toBe(false);
  });

  it('ok/--host-token-file configures the host', async () => {
    const h = makeHostRoot('tokenfile');
    hosts.push(h);
    const file = join(h.root, 'host-token');
    writeFileSync(file, TEST_HOST_TOKEN + '\n', { mode: 0o600 });
    const r = await setup(h, ['--host-token-file', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(h.etc, 'principals', 'root'), 'utf8')).toContain('root');
  });
});
