/**
 * Issue 11.10, the display side: text the server hands back (here a request stored before the
 * edge refused such text, or by a hostile server) is printed by `jit-ssh requests` with every
 * control and bidi character escaped, and a line break in it cannot forge a table row.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import type { RequestRecord } from '../../src/store/types.js';
import { makeEnv, startTestDaemon, subjectKey, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';
import { baseEnv, ensureBuilt, runCli } from './run-cli.js';

// Anything a terminal could act on or that reorders text: C0, DEL, C1, bidi controls, separators.
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

describeWithTools(['ssh-keygen'], 'jit-ssh shows server-supplied text escaped', () => {
  let env: TestEnv;
  let d: RunningDaemon;

  beforeAll(async () => {
    ensureBuilt();
    env = makeEnv();
    d = await startTestDaemon(env);
    const now = d.deps.clock.now();
    const planted: RequestRecord = {
      id: 'req_HOSTILEHOSTILE00',
      user: 'alice',
      target: 'prod-db',
      task: 'incident',
      account: 'postgres',
      ticket: 'INC-1',
      reason: 'routine \u009b2J\u009b31mAPPROVED\u001b]0;pwned\u0007 \u202etoor\u202c\nreq_FORGEDFORGEDFORG  pending  mallory',
      status: 'pending',
      createdAt: now,
      expiresAt: now + 30 * 60_000,
      rule: 'incident-with-approval',
      draft: { account: 'postgres', principals: ['postgres@prod-db'], ttlSeconds: 900, criticalOptions: {}, extensions: { 'permit-pty': '' } },
      approval: { approvers: ['sre-leads'], count: 1 },
      approvals: [],
      publicKey: subjectKey(env, 'planted').publicLine,
    };
    await d.deps.state.putRequest(planted);
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  it('fail/attack: a reason with 8-bit CSI, OSC, RLO and a forged row reaches the approver only escaped', async () => {
    const home = join(env.dir, 'home-bob');
    mkdirSync(home);
    const r = await runCli(['requests', '--pending', '--identity', env.keys.bob.path], baseEnv(home, { JITSSH_SERVER: d.url, JITSSH_USER: 'bob' }));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    expect(r.stdout).toContain('\\u{9b}2J\\u{9b}31mAPPROVED\\u{1b}]0;pwned\\u{7} \\u{202e}toor\\u{202c}\\u{a}req_FORGED');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2); // header + the one real request: no forged row
    expect(lines.some((l) => l.startsWith('req_FORGED'))).toBe(false);
  });
});
