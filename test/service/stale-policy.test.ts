/**
 * Issue 11.2 end to end: a request made while the user was eligible, then the admin changes the
 * policy and reloads it (SIGHUP, as in production), then the final approval. The decision is
 * taken again under the current policy: deny with the reason (audited, status denied, no
 * certificate), or issue only the shorter window a lowered ttl still allows (checked with
 * ssh-keygen -L).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { api, makeEnv, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { sshKeygen } from '../helpers/keys.js';
import { describeWithTools } from '../helpers/tools.js';
import { auditOf, manualClock, MIN, requestAccess, sessions, waitFor, type Session, type TestClock } from './support.js';

const T0 = Date.parse('2031-03-04T10:00:00Z');

describeWithTools(['ssh-keygen'], 'approval under a policy changed since the request', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let clock: TestClock;
  let tok: Session;
  let original: string;

  beforeAll(async () => {
    env = makeEnv();
    clock = manualClock(T0);
    d = await startTestDaemon(env, { clock });
    tok = sessions(d, env);
    original = readFileSync(env.policyPath, 'utf8');
  });
  afterEach(async () => {
    await reload(original);
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  /** Writes the policy and reloads it the way an admin does (SIGHUP); waits until it took effect. */
  async function reload(text: string): Promise<void> {
    if (readFileSync(env.policyPath, 'utf8') === text) return;
    const before = d.deps.policy();
    writeFileSync(env.policyPath, text);
    process.kill(process.pid, 'SIGHUP');
    await waitFor('policy reload', () => d.deps.policy() !== before);
  }
  const edited = (from: string | RegExp, to: string) => {
    const text = original.replace(from, to);
    expect(text).not.toBe(original); // the edit applied
    return text;
  };

  /** dave (dba) asks for incident on prod-db as postgres for 30m; needs 1 of sre-leads. */
  async function pendingIncident(): Promise<string> {
    // Sessions first: a user the new policy drops could not log in afterwards (nor need to).
    await tok('bob');
    const r = await requestAccess(d, env, await tok('dave'), { target: 'prod-db', task: 'incident', account: 'postgres', ticket: 'INC-9', ttl: '30m' });
    expect(r.status).toBe(202);
    return r.body.id;
  }
  const approve = async (user: string, id: string) => api(d.url, 'POST', `/v1/requests/${id}/approve`, {}, await tok(user));

  async function expectDeniedAtSigning(id: string, reason: RegExp): Promise<void> {
    const a = await approve('bob', id);
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({ id, status: 'denied' });
    expect(a.body.denialReason).toMatch(/^denied at signing: /);
    expect(a.body.denialReason).toMatch(reason);
    expect(a.body.certificate).toBeUndefined();
    const records = auditOf(env, id);
    expect(records.map((r) => r.type)).toEqual(['request', 'approve', 'deny']);
    expect(records[2]).toMatchObject({ stage: 'signing', reasons: [{ step: 'recheck', message: a.body.denialReason }] });
    expect((await d.deps.state.getRequest(id))?.status).toBe('denied');
    // A second approver cannot revive it.
    expect((await approve('carol', id)).status).toBe(409);
  }

  it('fail/requester removed from every group before the approval → denied, no certificate', async () => {
    const id = await pendingIncident();
    await reload(edited('dave:\n    groups: [dba]', 'dave:\n    groups: []'));
    await expectDeniedAtSigning(id, /rule incident-with-approval no longer applies: groups \(no groups\) share none of \[dba, sre\]/);
  });

  it('fail/rule deleted before the approval → denied', async () => {
    const id = await pendingIncident();
    await reload(edited(/  - name: incident-with-approval\n(    .*\n)+?(?=  - name)/, ''));
    await expectDeniedAtSigning(id, /no rule matches \(rule incident-with-approval no longer exists\)/);
  });

  it('fail/requester account removed from the policy before the approval → denied', async () => {
    const id = await pendingIncident();
    await reload(edited(/  dave:\n    groups: \[dba\]\n    keys: .*\n/, ''));
    await expectDeniedAtSigning(id, /user dave is not in the policy/);
  });

  it('fail/target account removed before the approval → denied', async () => {
    const id = await pendingIncident();
    let text = edited('prod-db: { hosts: [127.0.0.1], accounts: [postgres, readonly, deploy] }', 'prod-db: { hosts: [127.0.0.1], accounts: [readonly, deploy] }');
    text = text.replace('incident: { accounts: [postgres, deploy, root]', 'incident: { accounts: [deploy, root]');
    await reload(text);
    await expectDeniedAtSigning(id, /account postgres is not allowed for task incident on prod-db/);
  });

  it('ok/ttl lowered before the approval → the shorter window is issued (ssh-keygen reads it), the change audited', async () => {
    const id = await pendingIncident();
    await reload(edited('incident: { accounts: [postgres, deploy, root], maxTtl: 1h', 'incident: { accounts: [postgres, deploy, root], maxTtl: 10m'));
    clock.advance(2 * MIN);
    const approvedAt = clock.now() / 1000;
    const a = await approve('bob', id);
    expect(a.body.status).toBe('issued');
    expect(Date.parse(a.body.validBefore) / 1000).toBe(approvedAt + 600); // not + 1800
    const file = join(env.dir, `${id}-cert.pub`);
    writeFileSync(file, a.body.certificate + '\n');
    const shown = sshKeygen(['-L', '-f', file]);
    const fmt = (s: number) => new Date(s * 1000).toISOString().slice(0, 19);
    expect(shown).toContain(`Valid: from ${fmt(approvedAt - 60)} to ${fmt(approvedAt + 600)}`);
    const records = auditOf(env, id);
    expect(records.map((r) => r.type)).toEqual(['request', 'approve', 'decision', 'issue']);
    expect(records[2].changes).toEqual(['ttl shortened from 30m to 10m: ttl 10m (maximum 10m for task incident)']);
    expect(records[3]).toMatchObject({ validBefore: approvedAt + 600, approvals: ['bob'] });
  });

  it('ok/unchanged policy (control): the same approval issues the full 30m window', async () => {
    const id = await pendingIncident();
    const approvedAt = clock.now() / 1000;
    const a = await approve('bob', id);
    expect(a.body.status).toBe('issued');
    expect(Date.parse(a.body.validBefore) / 1000).toBe(approvedAt + 1800);
    expect(auditOf(env, id).map((r) => r.type)).toEqual(['request', 'approve', 'issue']);
  });

  it('fail/approvals from someone no longer an approver do not count: the request waits for another', async () => {
    // vault needs 2 of sre-leads (bob, carol). bob approves, then leaves sre-leads.
    await tok('carol');
    const r = await requestAccess(d, env, await tok('dave'), { target: 'vault', task: 'incident', ticket: 'INC-3', ttl: '20m' });
    expect(r.body.approvalsNeeded).toBe(2);
    expect((await approve('bob', r.body.id)).body.approvalsNeeded).toBe(1);
    await reload(edited('bob:\n    groups: [sre-leads]', 'bob:\n    groups: [sre]'));
    const a = await approve('carol', r.body.id);
    expect(a.body).toMatchObject({ status: 'pending', approvalsNeeded: 1 });
    expect(a.body.approvals.map((x: { by: string }) => x.by)).toEqual(['carol']);
    expect(auditOf(env, r.body.id).map((x) => x.type)).toEqual(['request', 'approve', 'approve', 'decision']);
    expect(auditOf(env, r.body.id)[3]).toMatchObject({ decision: 'wait', dropped: ['bob'] });
  });
});
