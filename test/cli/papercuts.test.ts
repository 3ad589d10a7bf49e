/**
 * Papercuts a new user hit, each fixed and pinned here: the built CLI against an in-process
 * daemon and a real ssh-agent.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { makeEnv, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';
import { baseEnv, ensureBuilt, homeMaker, runCli, startAgent } from './run-cli.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeWithTools(['ssh-agent', 'ssh-add', 'ssh-keygen'], 'jit-ssh papercuts', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  const agents: { stop(): void }[] = [];
  const home = homeMaker(() => env.dir);
  const as = (h: string, user: string, extra: Record<string, string | undefined> = {}) => baseEnv(h, { JITSSH_SERVER: d.url, JITSSH_USER: user, ...extra });

  beforeAll(async () => {
    ensureBuilt();
    env = makeEnv({ tasks: '  blink: { accounts: [readonly], maxTtl: 1m }', rules: '  - { name: blink-auto, groups: [oncall], targets: [prod-*], tasks: [blink], approval: auto }\n' });
    d = await startTestDaemon(env);
  });
  afterAll(async () => {
    for (const a of agents) a.stop();
    await d?.close();
    env?.cleanup();
  });

  it('fail/a target or task that is not yours is exit 1 with a did-you-mean from your own list', async () => {
    const e = as(home(), 'alice', { JITSSH_IDENTITY: env.keys.alice.path });
    const t = await runCli(['login', 'prod-dv', '--task', 'check-logs', '--no-agent'], e);
    expect(t.code).toBe(1);
    expect(t.stderr).toBe('error: target: prod-dv is not a target you may request; did you mean prod-db? (jit-ssh targets lists yours)\n');
    const k = await runCli(['login', 'prod-db', '--task', 'check-log', '--no-agent'], e);
    expect(k.code).toBe(1);
    expect(k.stderr).toMatch(/^error: task: check-log is not a task you may request on prod-db; did you mean check-logs\? \(yours there: .*check-logs/);
    // mallory may request nothing: vault exists, but she is not told so, nor offered any name.
    const m = await runCli(['login', 'vault', '--task', 'incident', '--no-agent', '--identity', env.keys.mallory.path], as(home(), 'mallory'));
    expect(m.code).toBe(1);
    expect(m.stderr).toBe('error: target: vault is not a target you may request (jit-ssh targets lists yours)\n');
    // A denial that is about the request, not the names, stays a policy denial (exit 2).
    const ticket = await runCli(['login', 'prod-db', '--task', 'incident', '--ticket', 'nope', '--no-agent'], e);
    expect(ticket.code).toBe(2);
  });

  it('fail/--identity naming a missing file is an error even with a cached session token', async () => {
    const h = home();
    const ok = await runCli(['targets', '--identity', env.keys.alice.path], as(h, 'alice'));
    expect(ok.code).toBe(0); // the session token is now cached in h
    const r = await runCli(['targets', '--identity', join(h, 'no-such-key')], as(h, 'alice'));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: --identity: no such file ${join(h, 'no-such-key')}\n`);
    const viaEnv = await runCli(['targets'], as(h, 'alice', { JITSSH_IDENTITY: join(h, 'gone') }));
    expect(viaEnv.code).toBe(1);
    expect(viaEnv.stderr).toMatch(/^error: JITSSH_IDENTITY: no such file /);
  });

  it('ok/requests --status issued leaves out certificates whose time ran out; --status expired shows them', async () => {
    const e = as(home(), 'alice', { JITSSH_IDENTITY: env.keys.alice.path });
    const short = JSON.parse((await runCli(['login', 'prod-web', '--task', 'blink', '--ttl', '2s', '--no-agent', '--json'], e)).stdout);
    const long = JSON.parse((await runCli(['login', 'prod-db', '--task', 'blink', '--ttl', '1m', '--no-agent', '--json'], e)).stdout);
    await sleep(2500);
    const ids = async (status: string) => JSON.parse((await runCli(['requests', '--status', status, '--json'], e)).stdout).map((r: { id: string }) => r.id);
    const issued = await ids('issued');
    expect(issued).toContain(long.id);
    expect(issued).not.toContain(short.id);
    const expired = await ids('expired');
    expect(expired).toContain(short.id);
    expect(expired).not.toContain(long.id);
    const text = await runCli(['requests'], e);
    expect(text.stdout).toMatch(new RegExp(`${short.id}\\s+expired\\s.*certificate ended \\d{2}:\\d{2}:\\d{2} \\S+`));
  });

  it('ok/two cert dirs sharing one ssh-agent keep each other\'s entries for the same target', async () => {
    const h = home();
    const agent = await startAgent(h);
    agents.push(agent);
    const e = as(h, 'alice', { SSH_AUTH_SOCK: agent.sock, JITSSH_IDENTITY: env.keys.alice.path });
    const one = JSON.parse((await runCli(['login', 'prod-db', '--task', 'check-logs', '--out', join(h, 'one'), '--json'], e)).stdout);
    const two = JSON.parse((await runCli(['login', 'prod-db', '--task', 'check-logs', '--out', join(h, 'two'), '--json'], e)).stdout);
    expect([one.agent, two.agent]).toEqual([true, true]);
    const listed = agent.list();
    expect(listed).toContain(`jit-ssh:prod-db:${one.id}:`);
    expect(listed).toContain(`jit-ssh:prod-db:${two.id}:`);
    // A new login in dir one replaces only dir one's entry.
    const again = JSON.parse((await runCli(['login', 'prod-db', '--task', 'check-logs', '--out', join(h, 'one'), '--json'], e)).stdout);
    const after = agent.list();
    expect(after).not.toContain(`:${one.id}:`);
    expect(after).toContain(`jit-ssh:prod-db:${again.id}:`);
    expect(after).toContain(`jit-ssh:prod-db:${two.id}:`);
    const st = JSON.parse((await runCli(['status', '--out', join(h, 'two'), '--json'], e)).stdout);
    expect(st.certificates[0]).toMatchObject({ id: two.id, inAgent: true });
  });

  it('ok/times in output are 24-hour local time with the zone', async () => {
    const e = as(home(), 'alice', { JITSSH_IDENTITY: env.keys.alice.path, TZ: 'Asia/Kolkata' });
    const r = await runCli(['login', 'prod-web', '--task', 'check-logs', '--no-agent'], e);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ {2}expires {5}([0-9]{4}-[0-9]{2}-[0-9]{2} )?[0-2][0-9]:[0-5][0-9]:[0-5][0-9] GMT\+5:30 \(in 1[45]m/);
  });
});
