/** jit-sshd policy validate / policy check. */
import { decide } from '../../policy/decide.js';
import { explainDecision } from '../../policy/explain.js';
import { JitError } from '../../errors.js';
import { adminPolicy, print, type CommonArgs } from './settings.js';

export async function validate(a: CommonArgs): Promise<void> {
  const { policy, policyPath } = adminPolicy(a);
  const rules = policy.rules.length;
  print(a, `ok: ${a.config} and ${policyPath} are valid (${Object.keys(policy.users).length} users, ${Object.keys(policy.targets).length} targets, ${rules} rules)`, {
    ok: true,
    policy: policyPath,
  });
}

export async function check(
  a: CommonArgs & { user: string; target: string; task: string; account?: string; ttl?: string; ticket?: string; source?: string; at?: string },
): Promise<void> {
  const { config, policy } = adminPolicy(a);
  const u = policy.users[a.user];
  if (!u) throw new JitError('not_found', `no user ${a.user} in the policy`);
  const now = a.at ? new Date(a.at) : new Date();
  if (Number.isNaN(now.getTime())) throw new JitError('invalid_field', `--at: not a date: ${a.at}`);
  const d = decide(
    { target: a.target, task: a.task, account: a.account, ttl: a.ttl, ticket: a.ticket, sourceAddress: a.source ?? '127.0.0.1' },
    { user: a.user, groups: [...u.groups], via: 'ssh-key' },
    policy,
    now,
    { activeGrants: 0, config: { maxTtl: config.maxTtl, backdate: config.backdate } },
  );
  print(a, explainDecision(d), d);
  if (d.decision === 'deny') process.exitCode = 2;
}
