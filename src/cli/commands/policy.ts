/** jit-sshd policy validate / policy check. */
import { decide } from '../../policy/decide.js';
import { explainDecision } from '../../policy/explain.js';
import { JitError } from '../../errors.js';
import { NAME_RE } from '../../policy/names.js';
import { withPolicyGroups } from '../../auth/oidc-identity.js';
import { groupsNoUserHas } from '../../policy/group-sources.js';
import type { Identity } from '../../policy/decide.js';
import { adminPolicy, print, type CommonArgs } from './settings.js';

export async function validate(a: CommonArgs): Promise<void> {
  const { config, policy, policyPath } = adminPolicy(a);
  const rules = policy.rules.length;
  const warnings = groupsNoUserHas(policy, config).map(({ path, group }) =>
    config.oidc
      ? `${path}: no users: entry has group ${group}; it can only come from the IdP's ${config.oidc.groupsClaim} claim`
      : `${path}: no user has group ${group}, and there is no SSO to provide it: this never matches`,
  );
  if (!a.json) for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
  print(a, `ok: ${a.config} and ${policyPath} are valid (${Object.keys(policy.users).length} users, ${Object.keys(policy.targets).length} targets, ${rules} rules)`, {
    ok: true,
    policy: policyPath,
    warnings,
  });
}

export async function check(
  a: CommonArgs & { user: string; target: string; task: string; account?: string; ttl?: string; ticket?: string; source?: string; at?: string; groups?: string },
): Promise<void> {
  const { config, policy } = adminPolicy(a);
  const identity = checkIdentity(policy.users[a.user], a.user, a.groups);
  const now = a.at ? new Date(a.at) : new Date();
  if (Number.isNaN(now.getTime())) throw new JitError('invalid_field', `--at: not a date: ${a.at}`);
  const d = decide(
    { target: a.target, task: a.task, account: a.account, ttl: a.ttl, ticket: a.ticket, sourceAddress: a.source ?? '127.0.0.1' },
    identity,
    policy,
    now,
    { activeGrants: 0, config: { maxTtl: config.maxTtl, backdate: config.backdate } },
  );
  print(a, explainDecision(d), d);
  if (d.decision === 'deny') process.exitCode = 2;
}

/**
 * Who `policy check` decides for: a policy user as an SSH-key login; with --groups, an SSO login
 * whose IdP sends those groups (∪ the policy's, when the user also has a users: entry).
 */
function checkIdentity(u: { groups: string[] } | undefined, user: string, groupsFlag: string | undefined): Identity {
  if (groupsFlag === undefined) {
    if (!u) throw new JitError('not_found', `no user ${user} in the policy (for an SSO user, give the IdP's groups: --groups a,b)`);
    return { user, groups: [...u.groups], via: 'ssh-key' };
  }
  const idpGroups = groupsFlag.split(',').map((g) => g.trim()).filter(Boolean);
  const bad = idpGroups.find((g) => !NAME_RE.test(g));
  if (bad !== undefined) throw new JitError('invalid_field', `--groups: '${bad}' is not a group name`);
  return { user, groups: withPolicyGroups(idpGroups, u?.groups), via: 'oidc' };
}
