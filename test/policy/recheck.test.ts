/**
 * Issue 11.2, the pure part: a request approved under one policy is decided again under the
 * policy at signing time. Each case changes one thing in the policy between request and
 * final approval and asserts what may still be issued.
 */
import { describe, expect, it } from 'vitest';
import { decide, type Identity } from '../../src/policy/decide.js';
import { recheckAtSigning, type ApprovedRequest } from '../../src/policy/recheck.js';
import { validatePolicy } from '../../src/policy/schema.js';
import { basePolicy, policyWith } from './fixtures.js';

const NOW = new Date('2031-03-04T10:00:00Z');
const CTX = { activeGrants: 0, config: { maxTtl: 86_400, backdate: 60 } };

/** alice (sre) asks for incident on prod-db as postgres for 45m; bob (sre-leads) approved. */
function approvedRequest(): ApprovedRequest {
  const alice: Identity = { user: 'alice', groups: ['sre', 'oncall'], via: 'ssh-key' };
  const request = { target: 'prod-db', task: 'incident', account: 'postgres', ttl: '45m', ticket: 'INC-7', reason: 'db stuck' };
  const d = decide(request, alice, validatePolicy(basePolicy()), NOW, CTX);
  expect(d.decision).toBe('approval');
  const draft = d.certDraft!;
  return {
    user: 'alice',
    target: 'prod-db',
    task: 'incident',
    account: 'postgres',
    ticket: 'INC-7',
    reason: 'db stuck',
    rule: d.rule,
    draft: { principals: draft.principals, ttlSeconds: draft.ttlSeconds, backdateSeconds: draft.backdateSeconds, criticalOptions: draft.criticalOptions, extensions: draft.extensions },
    approval: d.approval,
    approvals: [{ by: 'bob' }],
  };
}

const recheck = (edit: (p: Record<string, any>) => void, req = approvedRequest()) =>
  recheckAtSigning(req, validatePolicy(policyWith(edit)), NOW, CTX);

describe('recheckAtSigning', () => {
  it('ok/unchanged policy: issue the same window, approved by bob', () => {
    expect(recheck(() => {})).toEqual({ verdict: 'issue', window: { ttlSeconds: 2700, backdateSeconds: 60 }, approvedBy: ['bob'], changes: [] });
  });

  const denials: Array<[string, (p: Record<string, any>) => void, RegExp]> = [
    ['requester removed from every group', (p) => { p.users.alice.groups = []; }, /policy now refuses it: no rule matches \(rule incident-with-approval no longer applies: groups \(no groups\) share none of \[dba, sre\]\)/],
    ['requester removed from the policy', (p) => { delete p.users.alice; }, /policy now refuses it: user alice is not in the policy/],
    ['requester disabled', (p) => { p.users.alice.disabled = true; }, /user alice is disabled/],
    ['rule deleted', (p) => { p.rules = p.rules.filter((r: any) => r.name !== 'incident-with-approval'); }, /policy now refuses it: no rule matches \(rule incident-with-approval no longer exists\)/],
    ['rule changed to deny', (p) => { p.rules[1].approval = 'deny'; }, /rule incident-with-approval denies this request/],
    ['account removed from the target and task', (p) => { p.targets['prod-db'].accounts = ['readonly', 'deploy']; p.tasks.incident.accounts = ['deploy']; }, /account postgres is not allowed for task incident on prod-db/],
    ['task now needs a different ticket', (p) => { p.tasks.incident.requireTicket = '^CHG-[0-9]+$'; }, /ticket INC-7 does not match/],
    ['principal format changed', (p) => { p.targets['prod-db'].principalFormat = '{target}:{account}'; }, /grants something different: principals postgres@prod-db → prod-db:postgres/],
    ['force command added', (p) => { p.tasks.incident.forceCommand = '/usr/bin/psql'; }, /critical options none → force-command=\/usr\/bin\/psql/],
    ['extensions changed', (p) => { p.tasks.incident.extensions = ['permit-pty', 'permit-agent-forwarding']; }, /extensions permit-pty,permit-port-forwarding → permit-pty,permit-agent-forwarding/],
    ['approvers changed', (p) => { p.rules[1].approval = { approvers: ['security'], count: 1 }; }, /approval it needs changed from 1 of sre-leads to 1 of security/],
    ['approval count raised', (p) => { p.rules[1].approval = { approvers: ['sre-leads'], count: 2 }; }, /changed from 1 of sre-leads to 2 of sre-leads/],
    ['now bound to a source address the request did not come from', (p) => { p.rules[1].bindSourceAddress = true; }, /requester's address, which is unknown/],
  ];
  it.each(denials)('fail/%s → deny naming it', (_name, edit, reason) => {
    const r = recheck(edit);
    expect(r.verdict).toBe('deny');
    expect(r.verdict === 'deny' && r.reason).toMatch(reason);
  });

  it('ok/lowered task maxTtl: the shorter window, said why', () => {
    const r = recheck((p) => { p.tasks.incident.maxTtl = '10m'; });
    expect(r).toMatchObject({ verdict: 'issue', window: { ttlSeconds: 600, backdateSeconds: 60 }, approvedBy: ['bob'] });
    expect(r.verdict === 'issue' && r.changes).toEqual(['ttl shortened from 45m to 10m: ttl 10m (maximum 10m for task incident)']);
  });

  it('ok/lowered policy and rule limits: the lowest wins', () => {
    const r = recheck((p) => { p.defaults.maxTtl = '30m'; p.defaults.ttl = '15m'; p.rules[1].maxTtl = '20m'; });
    expect(r).toMatchObject({ verdict: 'issue', window: { ttlSeconds: 1200 } });
  });

  it('ok/smaller backdate is kept; a larger one is not granted', () => {
    expect(recheck((p) => { p.defaults.backdate = '10s'; })).toMatchObject({ verdict: 'issue', window: { backdateSeconds: 10 } });
    expect(recheck((p) => { p.defaults.backdate = '10m'; })).toMatchObject({ verdict: 'issue', window: { backdateSeconds: 60 } });
  });

  it('ok/raised limits never lengthen what the approvers saw', () => {
    expect(recheck((p) => { p.tasks.incident.maxTtl = '8h'; p.defaults.maxTtl = '8h'; })).toMatchObject({ window: { ttlSeconds: 2700 } });
  });

  it('ok/rule now automatic: the grant is allowed without approval, so it is issued', () => {
    expect(recheck((p) => { p.rules[1].approval = 'auto'; })).toMatchObject({ verdict: 'issue', window: { ttlSeconds: 2700 } });
  });

  it('fail/an approver who left the approver group no longer counts: wait for another', () => {
    expect(recheck((p) => { p.users.bob.groups = []; })).toEqual({ verdict: 'wait', approvedBy: [], dropped: ['bob'] });
    expect(recheck((p) => { p.users.bob.disabled = true; })).toEqual({ verdict: 'wait', approvedBy: [], dropped: ['bob'] });
  });

  it('ok/two approvals needed, one approver left: the other still counts', () => {
    const twoPerson = (p: Record<string, any>) => {
      p.rules[1].approval = { approvers: ['sre-leads'], count: 2 };
      p.users.carol.groups = ['sre-leads'];
    };
    const req = { ...approvedRequest(), approval: { approvers: ['sre-leads'], count: 2 }, approvals: [{ by: 'bob' }, { by: 'carol' }] };
    expect(recheckAtSigning(req, validatePolicy(policyWith(twoPerson)), NOW, CTX)).toMatchObject({ verdict: 'issue', approvedBy: ['bob', 'carol'] });
    const bobLeft = (p: Record<string, any>) => { twoPerson(p); p.users.bob.groups = ['sre']; };
    expect(recheckAtSigning(req, validatePolicy(policyWith(bobLeft)), NOW, CTX)).toEqual({ verdict: 'wait', approvedBy: ['carol'], dropped: ['bob'] });
  });

  it('fail/maxActive reached meanwhile → deny', () => {
    const r = recheckAtSigning(approvedRequest(), validatePolicy(policyWith((p) => { p.rules[1].maxActive = 1; })), NOW, { ...CTX, activeGrants: 1 });
    expect(r).toMatchObject({ verdict: 'deny', reason: expect.stringMatching(/maxActive 1 reached/) });
  });

  it('fail/a stored reason the current text rule refuses → deny, not a crash', () => {
    const r = recheck(() => {}, { ...approvedRequest(), reason: 'old \u202e text' });
    expect(r).toMatchObject({ verdict: 'deny', reason: expect.stringMatching(/no longer passes validation: reason: must not contain/) });
  });
});
