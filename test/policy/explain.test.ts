import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decide, type Identity } from '../../src/policy/decide.js';
import { explainDecision, listAllowed } from '../../src/policy/explain.js';
import { parsePolicyYaml, validatePolicy } from '../../src/policy/schema.js';
import { basePolicy, policyWith } from './fixtures.js';

const NOW = new Date('2025-03-05T10:00:00Z');
const alice: Identity = { user: 'alice', groups: ['sre', 'oncall'], via: 'ssh-key' };
const ctx = { activeGrants: 0, config: { maxTtl: 8 * 3600, backdate: 60 } };

describe('explainDecision', () => {
  it('ok/auto: decision, deciding rule, certificate, and why every other rule did not decide', () => {
    const d = decide({ target: 'prod-db', task: 'check-logs', sourceAddress: '192.0.2.10' }, alice, validatePolicy(basePolicy()), NOW, ctx);
    const text = explainDecision(d);
    expect(text).toContain('decision: auto-approve (rule oncall-auto)');
    expect(text).toContain('principals readonly@prod-db, ttl 15m, account readonly');
    expect(text).toContain('source-address=192.0.2.10/32');
    expect(text).toContain('  oncall-auto: decides');
    expect(text).toContain('  incident-with-approval: no match — task check-logs is not in [incident]');
    expect(text).toContain('  staging-auto: no match — target prod-db matches none of [staging-*]');
  });

  it('fail/deny with no rule: reason and each rule’s mismatch', () => {
    const carol: Identity = { user: 'carol', groups: [], via: 'token' };
    const text = explainDecision(decide({ target: 'prod-db', task: 'check-logs' }, carol, validatePolicy(basePolicy()), NOW, ctx));
    expect(text.split('\n')[0]).toBe('decision: deny');
    expect(text).toContain('reason: no rule matches [ruleMatches]');
    for (const rule of ['oncall-auto', 'incident-with-approval', 'staging-auto']) expect(text).toMatch(new RegExp(`  ${rule}: no match — groups \\(no groups\\) share none of`));
  });

  it('fail/deny by a step names the failing step', () => {
    const d = decide({ target: 'prod-db', task: 'incident', ticket: 'INC-1', ttl: '2h' }, alice, validatePolicy(basePolicy()), NOW, ctx);
    const text = explainDecision(d);
    expect(text).toContain('decision: deny (rule incident-with-approval)');
    expect(text).toContain('FAIL resolveTtl: ttl 2h exceeds the maximum 1h for task incident');
  });

  it('ok/approval says who must approve', () => {
    const d = decide({ target: 'prod-db', task: 'incident', ticket: 'INC-1' }, alice, validatePolicy(basePolicy()), NOW, ctx);
    expect(explainDecision(d)).toContain('decision: needs approval (rule incident-with-approval)\n  note: needs 1 approval from sre-leads');
  });

  it('ok/a skipped later match says which rule came first', () => {
    const policy = validatePolicy(policyWith((p) => p.rules.push({ name: 'late', groups: ['sre'], targets: ['*'], tasks: ['*'], approval: 'auto' })));
    const text = explainDecision(decide({ target: 'staging-web', task: 'check-logs' }, alice, policy, NOW, ctx));
    expect(text).toContain('  late: skipped — also matches, but rule staging-auto comes first');
  });
});

describe('listAllowed', () => {
  it('ok/alice sees each target and task with its approval mode', () => {
    const list = listAllowed(alice, validatePolicy(basePolicy()), NOW);
    const summary = list.map((t) => [t.target, t.tasks.map((k) => `${k.task}:${k.approval}`)]);
    expect(summary).toEqual([
      ['prod-db', ['check-logs:auto', 'incident:approval', 'restart-service:auto']],
      ['prod-web', ['check-logs:auto', 'incident:approval', 'restart-service:auto']],
      ['staging-web', ['check-logs:auto', 'incident:auto', 'restart-service:auto']],
    ]);
    const incident = list[0].tasks[1];
    expect(incident).toEqual({
      task: 'incident',
      accounts: ['postgres', 'deploy'],
      approval: 'approval',
      approvers: { approvers: ['sre-leads'], count: 1 },
      rule: 'incident-with-approval',
      requireTicket: '^INC-[0-9]+$',
      requireReason: false,
      maxTtl: 3600,
      defaultTtl: 900,
    });
    expect(list[0].hosts).toEqual(['db1.prod.example.com']);
    expect(list[1].tasks[2]).toMatchObject({ task: 'restart-service', maxTtl: 600, defaultTtl: 600 });
  });

  it('ok/server ceiling lowers maxTtl', () => {
    const list = listAllowed(alice, validatePolicy(basePolicy()), NOW, { maxTtl: 300 });
    expect(list[0].tasks.every((t) => t.maxTtl === 300 && t.defaultTtl === 300)).toBe(true);
  });

  const empty: Array<[string, Identity, (p: Record<string, any>) => void]> = [
    ['fail/no groups sees nothing', { user: 'carol', groups: [], via: 'token' }, () => {}],
    ['fail/approver-only user sees nothing', { user: 'bob', groups: ['sre-leads'], via: 'ssh-key' }, () => {}],
    ['fail/disabled user sees nothing', { user: 'dave', groups: ['oncall'], via: 'ssh-key' }, () => {}],
    ['fail/deny rules are left out', alice, (p) => p.rules.forEach((r: any) => (r.approval = 'deny'))],
    ['fail/outside a deny schedule is left out', alice, (p) => p.rules.forEach((r: any) => (r.schedule = { timezone: 'UTC', days: ['sat'], hours: '00:00-01:00' }))],
  ];
  for (const [name, identity, edit] of empty) {
    it(name, () => expect(listAllowed(identity, validatePolicy(policyWith(edit)), NOW)).toEqual([]));
  }

  it('ok/shipped policy: alice may check logs on prod-db automatically', () => {
    const policy = parsePolicyYaml(readFileSync(new URL('../../config/policy.yaml', import.meta.url), 'utf8'), 'config/policy.yaml');
    const prodDb = listAllowed(alice, policy, NOW).find((t) => t.target === 'prod-db');
    expect(prodDb?.tasks.find((t) => t.task === 'check-logs')).toMatchObject({ approval: 'auto', rule: 'oncall-auto' });
    const d = decide({ target: 'prod-db', task: 'incident', ticket: 'INC-7', reason: 'db down' }, alice, policy, NOW, ctx);
    expect(d).toMatchObject({ decision: 'approval', approval: { approvers: ['sre-leads'], count: 1 } });
  });
});
