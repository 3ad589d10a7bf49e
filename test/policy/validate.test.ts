/** policy/validate.ts: the mistakes `jit-sshd policy validate` reports beyond the schema. */
import { describe, expect, it } from 'vitest';
import { validatePolicy } from '../../src/policy/schema.js';
import { findingLine, lintPolicy, type Finding, type LintConfig } from '../../src/policy/validate.js';
import { basePolicy, ED25519_KEY, policyWith } from './fixtures.js';

const NO_SSO: LintConfig = { adminGroups: [], auditorGroups: [] };
const SSO: LintConfig = { ...NO_SSO, oidc: { groupsClaim: 'groups' } };
const lint = (raw: Record<string, unknown>, config = NO_SSO) => lintPolicy(validatePolicy(raw), config);
const lines = (fs: Finding[]) => fs.map((f) => `${f.level}: ${findingLine(f, { policy: 'policy.yaml', config: 'jit-sshd.yaml' })}`);
const about = (fs: Finding[], path: string) => lines(fs).filter((l) => l.includes(`: ${path}: `));

describe('policy validate findings', () => {
  it('ok/the base policy has only the one finding it earns: nobody is in group dba', () => {
    expect(lines(lint(basePolicy()))).toEqual([
      'warning: policy.yaml: rules[1].groups: nobody is in group dba (and there is no SSO to provide it): it matches no one',
    ]);
  });

  it('fail/a key line of the right shape whose blob is broken is an error naming the user', () => {
    // Shape passes the schema (type prefix right), but the ed25519 key is 31 bytes, not 32.
    const blob = Buffer.from(ED25519_KEY.split(' ')[1], 'base64');
    const cut = Buffer.concat([blob.subarray(0, 15), Buffer.from([0, 0, 0, 31]), blob.subarray(19, 50)]).toString('base64');
    const fs = lint(policyWith((p) => (p.users.bob.keys = [`ssh-ed25519 ${cut} bob@x`])));
    const got = about(fs, 'users.bob.keys[0]');
    expect(got).toHaveLength(1);
    expect(got[0]).toMatch(/^error: policy\.yaml: users\.bob\.keys\[0\]: .*bob cannot log in with this key$/);
  });

  it('fail/an approver group nobody is in: error without SSO, warning naming the claim with SSO', () => {
    const raw = policyWith((p) => (p.rules[1].approval = { approvers: ['db-leads'], count: 1 }));
    expect(about(lint(raw), 'rules[1].approval.approvers')).toEqual([
      'error: policy.yaml: rules[1].approval.approvers: nobody is in approver group db-leads (and there is no SSO to provide it): requests waiting for it can never be approved',
    ]);
    expect(about(lint(raw, SSO), 'rules[1].approval.approvers')).toEqual([
      "warning: policy.yaml: rules[1].approval.approvers: no users: entry has group db-leads; it can only come from the IdP's groups claim",
    ]);
  });

  it('fail/adminGroups nobody is in are reported against the config file', () => {
    expect(about(lint(basePolicy(), { adminGroups: ['ops-admins'], auditorGroups: [] }), 'adminGroups')).toEqual([
      'warning: jit-sshd.yaml: adminGroups: nobody is in group ops-admins (and there is no SSO to provide it): it matches no one',
    ]);
  });

  it('fail/count larger than the approvers, never counting the requester', () => {
    // sre-leads = bob only. count 2: nobody's request can be approved.
    const two = lint(policyWith((p) => (p.rules[1].approval = { approvers: ['sre-leads'], count: 2 })));
    expect(about(two, 'rules[1].approval.count')).toEqual([
      'error: policy.yaml: rules[1].approval.count: needs 2 approvals but only 1 person (bob) may approve: no request under this rule can ever be approved',
    ]);
    // bob is the only approver and also a requester under the rule: his own requests are stuck (a warning: others' pass).
    const self = lint(policyWith((p) => (p.rules[1].groups = ['sre', 'sre-leads'])));
    expect(about(self, 'rules[1].approval.count')).toEqual([
      'warning: policy.yaml: rules[1].approval.count: needs 1 approval but only 1 person (bob) may approve: requests from bob (who may not approve their own) can ever be approved',
    ]);
    // A disabled approver does not count; with SSO the IdP may add people, so it is a warning.
    const disabled = policyWith((p) => (p.users.bob.disabled = true));
    expect(about(lint(disabled, SSO), 'rules[1].approval.count')[0]).toMatch(/^warning: .*needs 1 approval but nobody may approve.*unless the IdP puts more people in sre-leads$/);
    // Enough approvers: nothing to say.
    expect(about(lint(policyWith((p) => (p.users.carol.groups = ['sre-leads']))), 'rules[1].approval.count')).toEqual([]);
  });

  it('fail/a rule shadowed by an earlier one that matches every request it would', () => {
    const raw = policyWith((p) => {
      p.rules.push({ name: 'late-logs', users: ['alice'], targets: ['prod-db'], tasks: ['check-logs'], approval: { approvers: ['sre-leads'], count: 1 } });
    });
    expect(about(lint(raw), 'rules[3]')).toEqual([
      'warning: policy.yaml: rules[3]: rule late-logs never decides: the earlier rule oncall-auto matches every request it would (the first matching rule decides; move it up or narrow oncall-auto)',
    ]);
    // Not shadowed when it reaches someone the earlier rule does not (carol has no oncall).
    const wider = policyWith((p) => {
      p.rules.push({ name: 'late-logs', users: ['alice', 'carol'], targets: ['prod-db'], tasks: ['check-logs'], approval: 'auto' });
    });
    expect(about(lint(wider), 'rules[3]')).toEqual([]);
    // …or a target the earlier rule's globs do not cover.
    const other = policyWith((p) => {
      p.rules.push({ name: 'late-logs', groups: ['oncall'], targets: ['*-db', 'staging-web'], tasks: ['check-logs'], approval: 'auto' });
    });
    expect(about(lint(other), 'rules[3]')).toEqual([]);
  });

  it('fail/targets and tasks no rule grants (deny rules grant nothing)', () => {
    const raw = policyWith((p) => {
      p.targets.vault = { hosts: ['vault1'], accounts: ['root', 'readonly'] };
      p.tasks.rotate = { accounts: ['root'], maxTtl: '5m' };
      p.rules.unshift({ name: 'no-vault', groups: ['sre'], targets: ['vault'], tasks: ['*'], approval: 'deny' });
    });
    const fs = lint(raw);
    expect(about(fs, 'targets.vault')).toEqual(['warning: policy.yaml: targets.vault: no rule grants any task on target vault: nobody can get access to it']);
    expect(about(fs, 'tasks.rotate')).toEqual(['warning: policy.yaml: tasks.rotate: no rule grants task rotate on any target: nobody can request it']);
    expect(about(fs, 'tasks.check-logs')).toEqual([]);
  });
});
