/**
 * Rule fields `schedule` and `maxActive` through the daemon, with an injected clock:
 * auto inside the window, deny or approval outside it (in the rule's time zone, DST included),
 * and a per-user limit on live grants answered with 403 naming the limit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { api, makeEnv, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';
import { manualClock, MIN, requestAccess, sessions, type Session, type TestClock } from './support.js';

const RULES = `
  - name: office-hours
    groups: [oncall]
    targets: [office-db]
    tasks: [check-logs]
    approval: auto
    schedule: { timezone: Europe/Berlin, days: [mon, tue, wed, thu, fri], hours: "09:00-17:00", outside: deny }
  - name: office-or-approval
    groups: [oncall]
    targets: [office-web]
    tasks: [check-logs]
    approval: auto
    schedule: { timezone: America/New_York, days: [mon, tue, wed, thu, fri], hours: "09:00-17:00", outside: approval, approvers: [sre-leads], count: 1 }
  - name: limited
    users: [frank]
    targets: [limited-db]
    tasks: [check-logs]
    approval: auto
    maxActive: 1
  - name: limited-approval
    users: [gina]
    targets: [limited-web]
    tasks: [check-logs]
    approval: { approvers: [sre-leads], count: 1 }
    maxActive: 1
`;
const TARGETS = `  office-db: { hosts: [127.0.0.1], accounts: [readonly] }
  office-web: { hosts: [127.0.0.1], accounts: [readonly] }
  limited-db: { hosts: [127.0.0.1], accounts: [readonly] }
  limited-web: { hosts: [127.0.0.1], accounts: [readonly] }
`;
const USERS = { alice: ['sre', 'oncall'], bob: ['sre-leads'], frank: ['oncall'], gina: ['oncall'] };

describeWithTools(['ssh-keygen'], 'schedule and maxActive', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let clock: TestClock;
  let tok: Session;

  beforeAll(async () => {
    env = makeEnv({ rules: RULES, targets: TARGETS, users: USERS });
    clock = manualClock(Date.parse('2030-01-01T00:00:00Z'));
    d = await startTestDaemon(env, { clock });
    tok = sessions(d, env);
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  const ask = async (user: string, target: string, ttl?: string) =>
    requestAccess(d, env, await tok(user), { target, task: 'check-logs', ...(ttl ? { ttl } : {}) });

  // Chronological: the clock only moves forward. 2030-01-07 and 2030-07-01 are Mondays.
  describe('schedule outside: deny (Europe/Berlin, Mon–Fri 09:00–17:00)', () => {
    it.each([
      ['fail/Mon 08:30 CET (07:30Z) is before the window', '2030-01-07T07:30:00Z', 403],
      ['fail/Mon 08:59 CET', '2030-01-07T07:59:00Z', 403],
      ['ok/Mon 09:00 CET: the start is inside', '2030-01-07T08:00:00Z', 201],
      ['ok/Mon 16:59 CET', '2030-01-07T15:59:00Z', 201],
      ['fail/Mon 17:00 CET: the end is outside', '2030-01-07T16:00:00Z', 403],
      ['fail/Sat 11:00 CET', '2030-01-12T10:00:00Z', 403],
      ['ok/Mon 09:30 CEST (07:30Z in summer): the zone, not UTC, decides', '2030-07-01T07:30:00Z', 201],
    ])('%s', async (_name, at, want) => {
      clock.set(Date.parse(at));
      const r = await ask('alice', 'office-db');
      expect(r.status, JSON.stringify(r.body)).toBe(want);
      if (want === 403) {
        expect(r.body.error.code).toBe('policy_denied');
        expect(r.body.error.message).toMatch(/outside the schedule of rule office-hours/);
        expect(r.body.error.details).toMatchObject({ rule: 'office-hours', reasons: [{ step: 'scheduleAllows' }] });
      } else {
        expect(r.body.status).toBe('issued');
      }
    });
  });

  describe('schedule outside: approval (America/New_York)', () => {
    it.each([
      ['ok/Mon 09:00 EDT (13:00Z) is inside: auto', '2030-07-08T13:00:00Z', 201],
      ['ok/Mon 08:59 EDT needs sre-leads', '2030-07-08T12:59:00Z', 202],
      ['ok/Sat noon needs sre-leads', '2030-07-13T16:00:00Z', 202],
    ])('%s', async (_name, at, want) => {
      clock.set(Date.parse(at)); // rows are close together; tokens survive the one-minute step back
      const r = await ask('alice', 'office-web');
      expect(r.status, JSON.stringify(r.body)).toBe(want);
      if (want === 202) {
        expect(r.body).toMatchObject({ status: 'pending', approvers: ['sre-leads'], approvalsNeeded: 1 });
        const a = await api(d.url, 'POST', `/v1/requests/${r.body.id}/approve`, {}, await tok('bob'));
        expect(a.body.status).toBe('issued');
      }
    });
  });

  describe('maxActive', () => {
    const revoke = async (user: string, id: string) => api(d.url, 'POST', `/v1/requests/${id}/revoke`, {}, await tok(user));

    it('fail/maxActive 1: the second live grant is 403 naming the limit; revoking or expiry frees the slot', async () => {
      clock.set(Date.parse('2030-07-15T10:00:00Z'));
      const first = await ask('frank', 'limited-db', '10m');
      expect(first.status).toBe(201);
      const second = await ask('frank', 'limited-db');
      expect(second.status).toBe(403);
      expect(second.body.error.code).toBe('policy_denied');
      expect(second.body.error.message).toMatch(/maxActive 1/);
      expect(second.body.error.details.reasons[0].step).toBe('maxActive');

      expect((await revoke('frank', first.body.id)).status).toBe(200);
      const third = await ask('frank', 'limited-db', '10m');
      expect(third.status).toBe(201);
      expect((await ask('frank', 'limited-db')).status).toBe(403);

      clock.advance(10 * MIN + 1000); // third has expired
      expect((await ask('frank', 'limited-db', '10m')).status).toBe(201);
    });

    it('fail/maxActive 1: requests racing each other issue only one certificate', async () => {
      clock.advance(11 * MIN); // everything of frank's has expired
      const token = await tok('frank');
      const results = await Promise.all(
        [1, 2, 3, 4].map(() => requestAccess(d, env, token, { target: 'limited-db', task: 'check-logs', ttl: '10m' })),
      );
      expect(results.map((r) => r.status).sort()).toEqual([201, 403, 403, 403]);
    });

    it('fail/maxActive 1 with approval: a pending request holds the slot, so approvals cannot exceed the limit', async () => {
      const first = await ask('gina', 'limited-web');
      expect(first.status).toBe(202);
      const second = await ask('gina', 'limited-web');
      expect(second.status).toBe(403);
      expect(second.body.error.message).toMatch(/maxActive 1/);
      const a = await api(d.url, 'POST', `/v1/requests/${first.body.id}/approve`, {}, await tok('bob'));
      expect(a.body.status).toBe('issued');
      expect((await ask('gina', 'limited-web')).status).toBe(403);
    });

    it('ok/a denied or expired pending request no longer holds the slot', async () => {
      clock.advance(16 * MIN); // gina's issued grant (15m default) has expired
      const p = await ask('gina', 'limited-web');
      expect(p.status).toBe(202);
      const n = await api(d.url, 'POST', `/v1/requests/${p.body.id}/deny`, { reason: 'no' }, await tok('bob'));
      expect(n.body.status).toBe('denied');
      const q = await ask('gina', 'limited-web');
      expect(q.status).toBe(202);
      clock.advance(61 * MIN); // default pendingTtl 1h
      expect((await ask('gina', 'limited-web')).status).toBe(202);
    });
  });
});
