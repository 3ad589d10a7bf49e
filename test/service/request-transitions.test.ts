/**
 * The request state machine (service/request.ts), pure: every legal transition with the record
 * and audit events it produces, and every illegal one (wrong status, or facts that forbid it)
 * refused with a typed error and no change. The `@ts-expect-error` lines prove the illegal
 * ones do not type-check either (test/tsconfig.json is run by `npm test`).
 */
import { describe, expect, it } from 'vitest';
import { isJitError } from '../../src/errors.js';
import type { AutoDecision, DeniedDecision, NeedsApprovalDecision } from '../../src/policy/decide.js';
import {
  approve,
  certificateWindow,
  confirmAtSigning,
  deny,
  denyAtSigning,
  dropApprovals,
  expire,
  isLive,
  issue,
  refuse,
  request,
  revoke,
  REQUEST_STATUSES,
  type Issued,
  type Pending,
  type Request,
  type RequestStatus,
} from '../../src/service/request.js';

const T = Date.parse('2031-05-06T07:00:00Z');
const draft = { user: 'dave', target: 'prod-db', task: 'incident', account: 'dba', principals: ['dba@prod-db'], ttlSeconds: 1800, backdateSeconds: 60, criticalOptions: {}, extensions: { 'permit-pty': '' } };
const facts = { id: 'req_1', user: 'dave', target: 'prod-db', task: 'incident', ticket: 'INC-1', reason: 'pager', publicKey: 'ssh-ed25519 AAAA', keyFingerprint: 'SHA256:abc', now: T, pendingTtlSeconds: 600 };
const needsTwo: NeedsApprovalDecision = { decision: 'approval', rule: 'incidents', reasons: [], steps: [], certDraft: draft, approval: { approvers: ['sre-leads'], count: 2 } };
const auto: AutoDecision = { decision: 'auto', rule: 'logs', reasons: [], steps: [], certDraft: draft };
const cert = { serial: '42', keyId: 'jit-ssh:req_1:dave:incident', validAfter: T / 1000 - 60, validBefore: T / 1000 + 1800, caFingerprint: 'SHA256:ca', certificate: 'ssh-ed25519-cert-v01@openssh.com AAAA' };

const pending = (): Pending => request(facts, needsTwo).record;
const approved = (): Pending => approve(approve(pending(), 'bob', T + 1).record, 'carol', T + 2).record;
const issued = (): Issued => issue(approved(), cert).record;

/** One record in each status, reached by legal transitions only. */
const inStatus: Record<RequestStatus, () => Request> = {
  pending,
  issued,
  denied: () => deny(pending(), 'bob', 'no', T + 1).record,
  expired: () => expire(pending(), T + 600_000).record,
  revoked: () => revoke(issued(), 'admin', 'done', T + 3).record,
};

function refusedWith(code: string, f: () => unknown): void {
  try {
    f();
  } catch (e) {
    expect(isJitError(e) && e.code).toBe(code);
    return;
  }
  throw new Error(`expected JitError(${code})`);
}

describe('request lifecycle transitions', () => {
  describe('legal', () => {
    it('ok/request needing approval: pending, expires after pendingTtl, one request record', () => {
      const { record, events } = request(facts, needsTwo);
      expect(record).toMatchObject({ status: 'pending', rule: 'incidents', account: 'dba', expiresAt: T + 600_000, approvals: [], approval: { count: 2 } });
      expect(events).toEqual([expect.objectContaining({ type: 'request', id: 'req_1', status: 'pending', approvers: ['sre-leads'], count: 2, keyFingerprint: 'SHA256:abc' })]);
    });

    it('ok/request auto: pending with no event (its issue record audits it)', () => {
      const { record, events } = request(facts, auto);
      expect(record.status).toBe('pending');
      expect(events).toEqual([]);
      expect(issue(record, cert).record.status).toBe('issued');
    });

    it('ok/refuse: a deny record naming the reasons, nothing stored', () => {
      const denied: DeniedDecision = { decision: 'deny', reasons: [{ step: 'ruleMatches', message: 'no rule matches' }], steps: [] };
      expect(refuse(facts, denied)).toMatchObject({ type: 'deny', id: 'req_1', reasons: [{ message: 'no rule matches' }] });
    });

    it('ok/approve: one more approval, complete only at the count; a repeat changes nothing', () => {
      const one = approve(pending(), 'bob', T + 1, 'go');
      expect(one.complete).toBe(false);
      expect(one.record.approvals).toEqual([{ by: 'bob', at: T + 1, comment: 'go' }]);
      expect(one.events).toEqual([expect.objectContaining({ type: 'approve', by: 'bob', approvals: 1, needed: 2 })]);
      const again = approve(one.record, 'bob', T + 2);
      expect(again).toMatchObject({ complete: false, events: [] });
      expect(again.record).toBe(one.record);
      expect(approve(one.record, 'carol', T + 2).complete).toBe(true);
    });

    it('ok/deny by an approver: denied with who and why, a reject record', () => {
      const { record, events } = deny(pending(), 'bob', 'not now', T + 5);
      expect(record).toMatchObject({ status: 'denied', denial: { by: 'bob', at: T + 5, reason: 'not now' } });
      expect(events).toEqual([{ type: 'reject', id: 'req_1', user: 'dave', by: 'bob', reason: 'not now' }]);
    });

    it('ok/deny at signing: denied by nobody, a deny record of stage signing', () => {
      const { record, events } = denyAtSigning(approved(), 'rule gone', T + 5);
      expect(record).toMatchObject({ status: 'denied', denial: { at: T + 5, reason: 'denied at signing: rule gone' } });
      expect(record.denial.by).toBeUndefined();
      expect(events).toEqual([expect.objectContaining({ type: 'deny', stage: 'signing' })]);
    });

    it('ok/drop approvals at signing: still pending with the approvals that count', () => {
      const { record, events } = dropApprovals(approved(), ['carol'], ['bob']);
      expect(record.status).toBe('pending');
      expect(record.approvals.map((a) => a.by)).toEqual(['carol']);
      expect(events).toEqual([expect.objectContaining({ type: 'decision', decision: 'wait', dropped: ['bob'], approvals: 1 })]);
    });

    it('ok/confirm at signing: the shorter window, a decision record only when something changed', () => {
      const same = confirmAtSigning(approved(), { ttlSeconds: 1800, backdateSeconds: 60 }, ['bob', 'carol'], []);
      expect(same.events).toEqual([]);
      const shorter = confirmAtSigning(approved(), { ttlSeconds: 600, backdateSeconds: 30 }, ['bob', 'carol'], ['ttl shortened']);
      expect(shorter.record.draft).toMatchObject({ ttlSeconds: 600, backdateSeconds: 30 });
      expect(shorter.events).toEqual([expect.objectContaining({ type: 'decision', decision: 'issue', changes: ['ttl shortened'] })]);
    });

    it('ok/expire: at or after the deadline, an expire record', () => {
      const { record, events } = expire(pending(), T + 600_000);
      expect(record.status).toBe('expired');
      expect(events).toEqual([{ type: 'expire', id: 'req_1', user: 'dave', target: 'prod-db', task: 'incident' }]);
    });

    it('ok/issue: issued with the certificate, an issue record with everything a restart needs', () => {
      const { record, events } = issue(approved(), cert);
      expect(record).toMatchObject({ status: 'issued', cert });
      expect(events).toEqual([
        expect.objectContaining({ type: 'issue', serial: '42', principals: ['dba@prod-db'], approvals: ['bob', 'carol'], ca: 'SHA256:ca', certificate: cert.certificate, publicKey: 'ssh-ed25519 AAAA' }),
      ]);
    });

    it('ok/revoke issued: revoked, keeps the certificate, a revoke record with its KRL entry', () => {
      const { record, events } = revoke(issued(), 'admin', 'done', T + 9);
      expect(record).toMatchObject({ status: 'revoked', revokedAt: T + 9, revokedBy: 'admin', cert: { serial: '42' } });
      expect(events).toEqual([expect.objectContaining({ type: 'revoke', serial: '42', ca: 'SHA256:ca', validBefore: cert.validBefore, by: 'admin' })]);
    });

    it('ok/revoke pending: revoked without a certificate', () => {
      const { record, events } = revoke(pending(), 'dave', undefined, T + 9);
      expect(record.status).toBe('revoked');
      expect(record.cert).toBeUndefined();
      expect(events[0]).toMatchObject({ type: 'revoke', serial: undefined });
    });

    it('ok/live: only pending and issued can still change', () => {
      expect(REQUEST_STATUSES.filter((s) => isLive(inStatus[s]()))).toEqual(['pending', 'issued']);
    });

    it('ok/certificate window: starts backdated, ends at ttl or the identity cap, whichever is first', () => {
      const nowSec = T / 1000;
      expect(certificateWindow(pending(), nowSec, 30)).toEqual({ validAfter: nowSec - 60, validBefore: nowSec + 1800 });
      const capped: Pending = { ...pending(), draft: { ...draft, notAfter: nowSec + 100 } };
      expect(certificateWindow(capped, nowSec, 30).validBefore).toBe(nowSec + 100);
    });
  });

  describe('illegal: wrong status (run time, for records that arrive untyped)', () => {
    // Each transition and the statuses it may leave.
    const transitions: Array<[string, readonly RequestStatus[], (r: Pending & Issued) => unknown]> = [
      ['approve', ['pending'], (r) => approve(r, 'bob', T + 1)],
      ['deny', ['pending'], (r) => deny(r, 'bob', 'no', T + 1)],
      ['denyAtSigning', ['pending'], (r) => denyAtSigning(r, 'why', T + 1)],
      ['dropApprovals', ['pending'], (r) => dropApprovals(r, [], [])],
      ['confirmAtSigning', ['pending'], (r) => confirmAtSigning(r, { ttlSeconds: 60, backdateSeconds: 0 }, [], [])],
      ['expire', ['pending'], (r) => expire(r, T + 600_000)],
      ['issue', ['pending'], (r) => issue(r, cert)],
      ['revoke', ['pending', 'issued'], (r) => revoke(r, 'admin', undefined, T + 1)],
    ];
    for (const [name, from, run] of transitions) {
      for (const status of REQUEST_STATUSES.filter((s) => !from.includes(s))) {
        it(`fail/${name} from ${status}: conflict, record unchanged`, () => {
          const rec = inStatus[status]();
          const before = structuredClone(rec);
          refusedWith('conflict', () => run(rec as Pending & Issued));
          expect(rec).toEqual(before);
        });
      }
    }
  });

  describe('illegal: facts that forbid the step', () => {
    it('fail/approve own request: forbidden', () => refusedWith('forbidden', () => approve(pending(), 'dave', T + 1)));
    it('fail/deny own request: forbidden', () => refusedWith('forbidden', () => deny(pending(), 'dave', 'x', T + 1)));
    it('fail/approve after the deadline: conflict', () => refusedWith('conflict', () => approve(pending(), 'bob', T + 600_000)));
    it('fail/expire before the deadline: conflict', () => refusedWith('conflict', () => expire(pending(), T + 599_999)));
    it('fail/issue before enough approvals: conflict', () => {
      const once = approve(pending(), 'bob', T + 1).record;
      refusedWith('conflict', () => issue(once, cert));
    });
    it('fail/certificate window already over (identity cap passed): conflict', () => {
      const capped: Pending = { ...pending(), draft: { ...draft, notAfter: T / 1000 } };
      refusedWith('conflict', () => certificateWindow(capped, T / 1000, 30));
    });
  });

  it('illegal transitions do not type-check', () => {
    const done = inStatus.denied();
    const live = inStatus.issued();
    const guard = (f: () => unknown) => expect(f).toThrow();
    // @ts-expect-error a denied request cannot be approved
    guard(() => approve(done, 'bob', T));
    // @ts-expect-error an issued request cannot be issued again
    guard(() => issue(live, cert));
    // @ts-expect-error an issued request cannot expire (its certificate does, on its own)
    guard(() => expire(live, T + 600_000));
    // @ts-expect-error a revoked request cannot be revoked again
    guard(() => revoke(inStatus.revoked(), 'admin', undefined, T));
  });
});
