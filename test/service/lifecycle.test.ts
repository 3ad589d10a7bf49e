/**
 * The request lifecycle over real HTTP against an in-process daemon with an injected clock:
 * auto, pending → approved (count 1 and 2) → issued, self-approval, non-approvers, deny, expiry,
 * and the audit record of every step. The certificate window starts at the final approval.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { api, makeEnv, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';
import { auditOf, manualClock, MIN, requestAccess, sessions, type Session, type TestClock } from './support.js';

// A whole second, so validAfter/validBefore compare exactly.
const T0 = Date.parse('2031-03-04T10:00:00Z');

describeWithTools(['ssh-keygen'], 'request lifecycle over HTTP', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let clock: TestClock;
  let tok: Session;

  beforeAll(async () => {
    env = makeEnv({ config: 'pendingTtl: 30m\n' });
    clock = manualClock(T0);
    d = await startTestDaemon(env, { clock });
    tok = sessions(d, env);
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  const get = async (user: string, id: string) => api(d.url, 'GET', `/v1/requests/${id}`, undefined, await tok(user));
  const approve = async (user: string, id: string, comment?: string) =>
    api(d.url, 'POST', `/v1/requests/${id}/approve`, comment === undefined ? {} : { comment }, await tok(user));
  const deny = async (user: string, id: string, reason: string) => api(d.url, 'POST', `/v1/requests/${id}/deny`, { reason }, await tok(user));
  const incident = async (user: string, target = 'prod-db', ticket = 'INC-1') =>
    requestAccess(d, env, await tok(user), { target, task: 'incident', ticket, ttl: '30m' });

  describe('table', () => {
    it('ok/auto: an auto rule issues at once (201) with an issue record', async () => {
      const r = await requestAccess(d, env, await tok('alice'), { target: 'prod-db', task: 'check-logs' });
      expect(r.status).toBe(201);
      expect(r.body.status).toBe('issued');
      expect(auditOf(env, r.body.id).map((a) => a.type)).toEqual(['issue']);
    });

    it('ok/count 1: pending (202) → approved by an approver → the requester collects the certificate', async () => {
      const r = await incident('dave');
      expect(r.status).toBe(202);
      expect(r.body).toMatchObject({ status: 'pending', approvalsNeeded: 1, approvers: ['sre-leads'] });
      const id = r.body.id;
      expect((await get('dave', id)).body).toMatchObject({ status: 'pending', approvalsNeeded: 1 });
      // An approver sees it in the pending list.
      const list = await api(d.url, 'GET', '/v1/requests?status=pending', undefined, await tok('bob'));
      expect(list.body.requests.map((x: { id: string }) => x.id)).toContain(id);

      const a = await approve('bob', id, 'go ahead');
      expect(a.status).toBe(200);
      expect(a.body.status).toBe('issued');
      const mine = await get('dave', id);
      expect(mine.status).toBe(200);
      expect(mine.body).toMatchObject({ status: 'issued', principals: ['postgres@prod-db'] });
      expect(mine.body.certificate).toMatch(/^ssh-ed25519-cert-v01@openssh\.com AAAA/);
      expect(mine.body.keyId).toBe(`jit-ssh:${id}:dave:incident:INC-1`);
      expect(mine.body.approvals).toEqual([{ by: 'bob', at: new Date(clock.now()).toISOString(), comment: 'go ahead' }]);

      const trail = auditOf(env, id);
      expect(trail.map((x) => x.type)).toEqual(['request', 'approve', 'issue']);
      expect(trail[0]).toMatchObject({ user: 'dave', status: 'pending', approvers: ['sre-leads'], count: 1 });
      expect(trail[1]).toMatchObject({ by: 'bob', comment: 'go ahead', user: 'dave', time: new Date(clock.now()).toISOString() });
      expect(trail[2]).toMatchObject({ approvals: ['bob'], serial: mine.body.serial, keyId: mine.body.keyId });
    });

    it('ok/count 2 on vault: one approver counts once; the second distinct approver issues', async () => {
      const r = await incident('dave', 'vault', 'INC-2');
      expect(r.status).toBe(202);
      expect(r.body.approvalsNeeded).toBe(2);
      const id = r.body.id;

      const first = await approve('bob', id, 'one');
      expect(first.status).toBe(200);
      expect(first.body).toMatchObject({ status: 'pending', approvalsNeeded: 1 });
      const again = await approve('bob', id, 'one more time');
      expect(again.body).toMatchObject({ status: 'pending', approvalsNeeded: 1 });
      expect((await get('dave', id)).body.status).toBe('pending');

      const second = await approve('carol', id, 'two');
      expect(second.body.status).toBe('issued');
      expect(second.body.principals).toEqual(['root@vault']);
      const trail = auditOf(env, id);
      expect(trail.filter((x) => x.type === 'approve').map((x) => [x.by, x.comment])).toEqual([
        ['bob', 'one'],
        ['carol', 'two'],
      ]);
      expect(trail.find((x) => x.type === 'issue')?.approvals).toEqual(['bob', 'carol']);
    });

    it('ok/final approvals racing each other sign exactly one certificate; the loser gets 409', async () => {
      const r = await incident('dave', 'prod-db', 'INC-22');
      const id = r.body.id;
      const results = await Promise.all([approve('carol', id), approve('bob', id), approve('carol', id)]);
      expect(results.map((x) => x.status).sort()).toEqual([200, 409, 409]);
      expect(results.find((x) => x.status === 200)!.body.status).toBe('issued');
      expect(auditOf(env, id).filter((a) => a.type === 'issue')).toHaveLength(1);
      expect(auditOf(env, id).filter((a) => a.type === 'approve')).toHaveLength(1);
    });

    it('fail/self-approval: carol (sre-leads) cannot approve her own request, bob can', async () => {
      const r = await incident('carol', 'prod-db', 'INC-3');
      expect(r.status).toBe(202);
      const self = await approve('carol', r.body.id);
      expect(self.status).toBe(403);
      expect(self.body.error.code).toBe('forbidden');
      expect((await deny('carol', r.body.id, 'never mind')).status).toBe(403);
      expect((await get('carol', r.body.id)).body.status).toBe('pending');
      expect(auditOf(env, r.body.id).filter((a) => a.type === 'approve')).toHaveLength(0);
      expect((await approve('bob', r.body.id)).body.status).toBe('issued');
    });

    it('fail/non-approvers get 403 and change nothing; unknown ids 404', async () => {
      const r = await incident('dave', 'prod-db', 'INC-4');
      for (const who of ['alice', 'mallory', 'erin']) {
        const a = await approve(who, r.body.id);
        expect(a.status, who).toBe(403);
        expect((await deny(who, r.body.id, 'no')).status, who).toBe(403);
      }
      expect((await get('dave', r.body.id)).body).toMatchObject({ status: 'pending', approvalsNeeded: 1 });
      expect(auditOf(env, r.body.id).map((a) => a.type)).toEqual(['request']);
      expect((await approve('bob', 'req_doesnotexist000000')).status).toBe(404);
    });

    it('ok/deny: the requester sees denied with the reason; approving afterwards is 409', async () => {
      const r = await incident('dave', 'prod-db', 'INC-5');
      const n = await deny('bob', r.body.id, 'not during the freeze');
      expect(n.status).toBe(200);
      expect(n.body.status).toBe('denied');
      const mine = await get('dave', r.body.id);
      expect(mine.body).toMatchObject({ status: 'denied', deniedBy: 'bob', denialReason: 'not during the freeze' });
      expect(mine.body.certificate).toBeUndefined();
      const late = await approve('carol', r.body.id);
      expect(late.status).toBe(409);
      expect(late.body.error.code).toBe('conflict');
      const trail = auditOf(env, r.body.id);
      expect(trail.map((a) => a.type)).toEqual(['request', 'reject']);
      expect(trail[1]).toMatchObject({ by: 'bob', reason: 'not during the freeze', time: new Date(clock.now()).toISOString() });
    });

    it('fail/deny needs a reason (400)', async () => {
      const r = await incident('dave', 'prod-db', 'INC-6');
      const n = await api(d.url, 'POST', `/v1/requests/${r.body.id}/deny`, {}, await tok('bob'));
      expect(n.status).toBe(400);
      expect((await get('dave', r.body.id)).body.status).toBe('pending');
    });

    it('ok/a pending request revoked by its requester can no longer be approved', async () => {
      const r = await incident('dave', 'prod-db', 'INC-7');
      const v = await api(d.url, 'POST', `/v1/requests/${r.body.id}/revoke`, {}, await tok('dave'));
      expect(v.status).toBe(200);
      expect(v.body.status).toBe('revoked');
      expect((await approve('bob', r.body.id)).status).toBe(409);
    });
  });

  // These move the shared clock forward, so they run after the table.
  describe('time', () => {
    it('ok/the window starts at the final approval, not at the request', async () => {
      const t = clock.now();
      const r = await incident('dave', 'prod-db', 'INC-10'); // ttl 30m
      expect(r.status).toBe(202);
      clock.advance(20 * MIN);
      const a = await approve('bob', r.body.id);
      expect(a.body.status).toBe('issued');
      const approvedAt = t + 20 * MIN;
      expect(Date.parse(a.body.validAfter)).toBe(approvedAt - 60_000); // backdate 60s
      expect(Date.parse(a.body.validBefore)).toBe(approvedAt + 30 * MIN);
      const issue = auditOf(env, r.body.id).find((x) => x.type === 'issue')!;
      expect(issue.validAfter).toBe((approvedAt - 60_000) / 1000);
      expect(issue.time).toBe(new Date(approvedAt).toISOString());
    });

    it('ok/count 2: the window starts at the second approval', async () => {
      const t = clock.now();
      const r = await incident('dave', 'vault', 'INC-11');
      clock.advance(5 * MIN);
      await approve('bob', r.body.id);
      clock.advance(7 * MIN);
      const a = await approve('carol', r.body.id);
      expect(Date.parse(a.body.validBefore)).toBe(t + 12 * MIN + 30 * MIN);
    });

    it('fail/a pending request expires after pendingTtl: GET shows expired, approve is 409, audited once', async () => {
      const r = await incident('dave', 'prod-db', 'INC-12');
      const r2 = await incident('dave', 'prod-db', 'INC-13');
      clock.advance(29 * MIN);
      expect((await get('dave', r.body.id)).body.status).toBe('pending');
      clock.advance(1 * MIN + 1000); // past pendingTtl 30m
      const mine = await get('dave', r.body.id);
      expect(mine.status).toBe(200);
      expect(mine.body.status).toBe('expired');
      const late = await approve('bob', r.body.id);
      expect(late.status).toBe(409);
      expect(late.body.error.message).toMatch(/expired/);
      // Approving one nobody looked at yet is also refused and expires it.
      expect((await approve('bob', r2.body.id)).status).toBe(409);
      expect((await deny('bob', r2.body.id, 'late')).status).toBe(409);
      for (const id of [r.body.id, r2.body.id]) {
        const trail = auditOf(env, id);
        expect(trail.map((a) => a.type)).toEqual(['request', 'expire']);
        expect(trail[1]).toMatchObject({ user: 'dave', time: new Date(clock.now()).toISOString() });
      }
      expect((await get('dave', r2.body.id)).body.status).toBe('expired');
    });

    it('ok/an expiry seen by several callers at once is audited once', async () => {
      const r = await incident('dave', 'prod-db', 'INC-15');
      clock.advance(31 * MIN);
      await Promise.all([tok('dave'), tok('bob')]);
      const results = await Promise.all([get('dave', r.body.id), approve('bob', r.body.id), get('bob', r.body.id), deny('bob', r.body.id, 'x')]);
      expect(results.map((x) => x.status)).toEqual([200, 409, 200, 409]);
      expect(auditOf(env, r.body.id).map((a) => a.type)).toEqual(['request', 'expire']);
    });

    it('ok/the pending list shows an expired request as expired, not pending', async () => {
      const r = await incident('dave', 'prod-db', 'INC-14');
      clock.advance(31 * MIN);
      const pending = await api(d.url, 'GET', '/v1/requests?status=pending', undefined, await tok('bob'));
      expect(pending.body.requests.map((x: { id: string }) => x.id)).not.toContain(r.body.id);
      const expired = await api(d.url, 'GET', '/v1/requests?status=expired', undefined, await tok('bob'));
      expect(expired.body.requests.map((x: { id: string }) => x.id)).toContain(r.body.id);
    });
  });
});
