/**
 * The CLI says when hosts running the session guard will cut a session: `jit-ssh ssh` on a
 * terminal (a script's stderr stays ssh's own), and `jit-ssh status` (table and --json).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionCutNotice } from '../../src/cli/commands/session-cut.js';
import type { RunningDaemon } from '../../src/daemon.js';
import { makeEnv, REPO, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';
import { baseEnv, ensureBuilt, runCli, spawnScript } from './run-cli.js';

describe('sessionCutNotice', () => {
  it('ok/names the local time, the time left and the command for more time', () => {
    const now = Date.parse('2030-01-02T10:00:00Z');
    const validBefore = new Date(now + 9 * 60_000 + 58_000).toISOString();
    const d = new Date(validBefore);
    const hms = [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
    const zone = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(d).find((p) => p.type === 'timeZoneName')?.value;
    const line = sessionCutNotice({ target: 'prod-db', task: 'check-logs', validBefore }, now);
    expect(line).toBe(
      `jit-ssh: this session will be cut at ${hms} ${zone} (in 9m 58s), when the certificate expires ` +
        '(hosts with the jit-ssh session guard end it then); for more time: jit-ssh login prod-db --task check-logs',
    );
    expect(sessionCutNotice({ target: 'web', validBefore }, now)).toMatch(/for more time: jit-ssh login web$/);
  });
});

describeWithTools(['script'], 'jit-ssh ssh and status warn when sessions will be cut', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let h: string;
  const as = () => baseEnv(h, { JITSSH_SERVER: d.url, JITSSH_USER: 'alice', JITSSH_IDENTITY: env.keys.alice.path, JITSSH_SSH_BIN: 'true' });

  beforeAll(async () => {
    ensureBuilt();
    env = makeEnv();
    d = await startTestDaemon(env);
    h = join(env.dir, 'home');
    mkdirSync(h);
    const r = await runCli(['login', 'prod-db', '--task', 'check-logs', '--ttl', '10m', '--no-agent'], as());
    if (r.code !== 0) throw new Error(`login: ${r.stderr}`);
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  it('ok/`jit-ssh ssh` on a terminal prints when the session will be cut; without one it prints nothing', async () => {
    const cmd = [process.execPath, join(REPO, 'dist/cli/jit-ssh.js'), 'ssh', 'prod-db', '--host', '127.0.0.1'].map((x) => `'${x}'`).join(' ');
    const tty = await spawnScript(cmd, { ...as(), SHELL: '/bin/sh' }).done;
    expect(tty.code).toBe(0);
    expect(tty.out).toMatch(/jit-ssh: this session will be cut at (\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d \S+ \(in (9m \d+s|10m)\), when the certificate expires/);
    const piped = await runCli(['ssh', 'prod-db', '--host', '127.0.0.1'], as());
    expect(piped.code).toBe(0);
    expect(piped.stderr).toBe('');
  });

  it('ok/`jit-ssh status` shows the cut time in the table and as sessionsCutAt in --json', async () => {
    const st = await runCli(['status'], as());
    expect(st.code).toBe(0);
    expect(st.stdout).toMatch(/EXPIRES \(SESSIONS CUT\)/);
    expect(st.stdout).toMatch(/SSH sessions opened with a certificate are cut when it expires or is revoked/);
    const js = await runCli(['status', '--json'], as());
    const [c] = JSON.parse(js.stdout).certificates;
    expect(c.sessionsCutAt).toBe(c.validBefore);
    expect(Date.parse(c.sessionsCutAt) - Date.now()).toBeGreaterThan(9 * 60_000);
  });
});
