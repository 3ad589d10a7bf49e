/** jit-sshd policy validate / policy check. */
import { decide } from '../../policy/decide.js';
import { explainDecision } from '../../policy/explain.js';
import { JitError } from '../../errors.js';
import { NAME_RE } from '../../policy/names.js';
import { withPolicyGroups } from '../../auth/oidc-identity.js';
import { findingLine, lintPolicy } from '../../policy/validate.js';
import type { Identity } from '../../policy/decide.js';
import { closest } from './unknown-names.js';
import { adminPolicy, print, type CommonArgs } from './settings.js';

/**
 * The schema check (loading fails on the first file with problems, listing them all), then the
 * findings of policy/validate.ts: errors exit 1, warnings alone exit 0.
 */
export async function validate(a: CommonArgs): Promise<void> {
  const { config, policy, policyPath } = adminPolicy(a);
  const findings = lintPolicy(policy, config);
  const files = { policy: policyPath, config: a.config };
  const errors = findings.filter((f) => f.level === 'error').map((f) => findingLine(f, files));
  const warnings = findings.filter((f) => f.level === 'warning').map((f) => findingLine(f, files));
  const counts = `${Object.keys(policy.users).length} users, ${Object.keys(policy.targets).length} targets, ${policy.rules.length} rules`;
  if (a.json) {
    process.stdout.write(JSON.stringify({ ok: errors.length === 0, policy: policyPath, errors, warnings }) + '\n');
  } else {
    for (const e of errors) process.stderr.write(`error: ${e}\n`);
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    if (errors.length === 0) process.stdout.write(`ok: ${a.config} and ${policyPath} are valid (${counts})\n`);
  }
  if (errors.length) {
    throw new JitError('invalid_config', `${policyPath}: ${errors.length} error${errors.length === 1 ? '' : 's'} that break access (listed above)`, {
      details: { errors, warnings },
    });
  }
}

export interface CheckArgs extends CommonArgs {
  user: string;
  target: string;
  task: string;
  account?: string;
  ttl?: string;
  ticket?: string;
  reason?: string;
  source?: string;
  at?: string;
  groups?: string;
  'active-grants'?: number;
}

/** Dry run of one request with every field a real one has; exit 2 when the policy denies it. */
export async function check(a: CheckArgs): Promise<void> {
  const { config, policy } = adminPolicy(a);
  const identity = checkIdentity(policy.users[a.user], a.user, a.groups);
  // The admin sees the whole policy, so a name it lacks is a typo to point out, not a denial.
  knownName('target', a.target, Object.keys(policy.targets));
  knownName('task', a.task, Object.keys(policy.tasks));
  const now = a.at ? new Date(a.at) : new Date();
  if (Number.isNaN(now.getTime())) throw new JitError('invalid_field', `--at: not a date: ${a.at}`);
  const activeGrants = a['active-grants'] ?? 0;
  if (!Number.isInteger(activeGrants) || activeGrants < 0) throw new JitError('invalid_field', '--active-grants: must be a whole number ≥ 0');
  const d = decide(
    { target: a.target, task: a.task, account: a.account, ttl: a.ttl, ticket: a.ticket, reason: a.reason, sourceAddress: a.source ?? '127.0.0.1' },
    identity,
    policy,
    now,
    { activeGrants, config: { maxTtl: config.maxTtl, backdate: config.backdate } },
  );
  print(a, explainDecision(d), d);
  if (d.decision === 'deny') process.exitCode = 2;
}

function knownName(field: 'target' | 'task', value: string, names: string[]): void {
  if (names.includes(value)) return;
  const near = closest(value, names);
  throw new JitError('invalid_field', `--${field}: no ${field} ${value} in the policy${near.length ? `; did you mean ${near.join(' or ')}?` : ''}`);
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
