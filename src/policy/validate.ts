/**
 * `jit-sshd policy validate` beyond the schema: mistakes that leave a valid policy that still
 * breaks access. Each finding is an error (access certainly breaks) or a warning (it breaks
 * unless something outside the file, such as the IdP's groups, fills the gap). Pure: policy and
 * config in, findings out.
 *
 * With SSO (`oidc:` configured) group membership also comes from the IdP's groups claim, which
 * only the IdP knows, so every "nobody is in this group" finding becomes a warning that says so.
 */
import { parsePublicKey } from '../ca/keys.js';
import { globMatches } from './glob.js';
import { groupsNoUserHas } from './group-sources.js';
import { sharedAccounts } from './decide.js';
import { problemLine } from './problems.js';
import type { Policy, Rule } from './schema.js';

export interface Finding {
  level: 'error' | 'warning';
  /** which file the path is in */
  file: 'policy' | 'config';
  path: readonly PropertyKey[];
  problem: string;
}

export interface LintConfig {
  adminGroups: readonly string[];
  auditorGroups: readonly string[];
  /** present when SSO is configured: groups may come from this claim */
  oidc?: { groupsClaim: string };
}

/** Login keys are checked as the daemon checks them at login (ca/keys.ts, RSA ≥ 2048 bits). */
const LOGIN_MIN_RSA_BITS = 2048;

export function lintPolicy(policy: Policy, config: LintConfig): Finding[] {
  return [
    ...userKeys(policy),
    ...unprovidedGroups(policy, config),
    ...approvalCounts(policy, config),
    ...shadowedRules(policy),
    ...unreachable(policy),
  ];
}

/** `file: path: problem` lines, with the file names the operator passed. */
export function findingLine(f: Finding, files: { policy: string; config: string }): string {
  return problemLine(files[f.file], f.path, f.problem);
}

function userKeys(policy: Policy): Finding[] {
  const out: Finding[] = [];
  for (const [user, u] of Object.entries(policy.users)) {
    u.keys.forEach((line, i) => {
      try {
        parsePublicKey(line, { minRsaBits: LOGIN_MIN_RSA_BITS });
      } catch (e) {
        out.push({ level: 'error', file: 'policy', path: ['users', user, 'keys', i], problem: `${(e as Error).message}: ${user} cannot log in with this key` });
      }
    });
  }
  return out;
}

function unprovidedGroups(policy: Policy, config: LintConfig): Finding[] {
  return groupsNoUserHas(policy, config).map(({ path, group }): Finding => {
    const approvers = /approvers$/.test(path);
    const file = path.startsWith('rules') ? 'policy' : 'config';
    const where = pathOf(path);
    if (config.oidc) {
      return { level: 'warning', file, path: where, problem: `no users: entry has group ${group}; it can only come from the IdP's ${config.oidc.groupsClaim} claim` };
    }
    return approvers
      ? { level: 'error', file, path: where, problem: `nobody is in approver group ${group} (and there is no SSO to provide it): requests waiting for it can never be approved` }
      : { level: 'warning', file, path: where, problem: `nobody is in group ${group} (and there is no SSO to provide it): it matches no one` };
  });
}

/** 'rules[2].approval.approvers' → ['rules', 2, 'approval', 'approvers'] */
function pathOf(text: string): PropertyKey[] {
  return text.split(/\.|(?=\[)/).map((s) => (/^\[\d+\]$/.test(s) ? Number(s.slice(1, -1)) : s));
}

/** Active users in any of the groups (their users: entries; SSO users are unknown here). */
function membersOf(policy: Policy, groups: readonly string[]): Set<string> {
  return new Set(
    Object.entries(policy.users)
      .filter(([, u]) => !u.disabled && u.groups.some((g) => groups.includes(g)))
      .map(([name]) => name),
  );
}

/** Active users a rule matches by name or by their users: groups. */
function requestersOf(policy: Policy, r: Rule): string[] {
  return Object.entries(policy.users)
    .filter(([name, u]) => !u.disabled && (r.users?.includes(name) || u.groups.some((g) => r.groups?.includes(g))))
    .map(([name]) => name);
}

/** `count` larger than the people who may approve, never counting the requester. */
function approvalCounts(policy: Policy, config: LintConfig): Finding[] {
  const out: Finding[] = [];
  policy.rules.forEach((r, i) => {
    const sets: [PropertyKey[], { approvers: string[]; count: number }][] = [];
    if (typeof r.approval === 'object') sets.push([['rules', i, 'approval', 'count'], r.approval]);
    if (r.schedule?.approvers && r.schedule.count !== undefined) sets.push([['rules', i, 'schedule', 'count'], { approvers: r.schedule.approvers, count: r.schedule.count }]);
    const requesters = requestersOf(policy, r);
    for (const [path, set] of sets) {
      const approvers = membersOf(policy, set.approvers);
      const stuck = requesters.filter((u) => [...approvers].filter((a) => a !== u).length < set.count);
      const everyone = approvers.size < set.count;
      if (!everyone && stuck.length === 0) continue;
      const names = [...approvers].sort().join(', ');
      const people = approvers.size === 0 ? 'nobody' : `only ${approvers.size} ${approvers.size === 1 ? 'person' : 'people'} (${names})`;
      const who = everyone ? 'no request under this rule' : `requests from ${stuck.join(', ')} (who may not approve their own)`;
      const sso = config.oidc ? `; unless the IdP puts more people in ${set.approvers.join(', ')}` : '';
      out.push({
        // Nobody's request can pass: error. Only some requesters' (their own vote does not
        // count): a warning that names them. With SSO the IdP may add approvers: warning.
        level: everyone && !config.oidc ? 'error' : 'warning',
        file: 'policy',
        path,
        problem: `needs ${set.count} approval${set.count === 1 ? '' : 's'} but ${people} may approve: ${who} can ever be approved${sso}`,
      });
    }
  });
  return out;
}

/** Concrete names a rule's target globs and task list cover. */
function coverage(policy: Policy, r: Rule): { targets: string[]; tasks: string[] } {
  return {
    targets: Object.keys(policy.targets).filter((t) => r.targets.some((g) => globMatches(g, t))),
    tasks: r.tasks.includes('*') ? Object.keys(policy.tasks) : r.tasks,
  };
}

/** Whether every identity rule `later` matches is matched by `earlier` too. */
function coversWho(policy: Policy, earlier: Rule, later: Rule): boolean {
  const byGroup = (g: string) => earlier.groups?.includes(g) ?? false;
  const users = (later.users ?? []).every((u) => earlier.users?.includes(u) || (policy.users[u]?.groups ?? []).some(byGroup));
  const groups = (later.groups ?? []).every(byGroup);
  return users && groups;
}

/**
 * A rule that never decides: the first rule matching (who, target, task) decides, whatever its
 * schedule or source limits, so a later rule whose every match an earlier rule also matches is dead.
 */
function shadowedRules(policy: Policy): Finding[] {
  const out: Finding[] = [];
  policy.rules.forEach((later, j) => {
    const mine = coverage(policy, later);
    if (mine.targets.length === 0) return; // reported by the schema check
    const by = policy.rules.slice(0, j).find((earlier) => {
      const theirs = coverage(policy, earlier);
      return (
        coversWho(policy, earlier, later) &&
        mine.targets.every((t) => theirs.targets.includes(t)) &&
        mine.tasks.every((t) => theirs.tasks.includes(t))
      );
    });
    if (by) {
      out.push({
        level: 'warning',
        file: 'policy',
        path: ['rules', j],
        problem: `rule ${later.name} never decides: the earlier rule ${by.name} matches every request it would (the first matching rule decides; move it up or narrow ${by.name})`,
      });
    }
  });
  return out;
}

/** Targets and tasks that no rule grants (deny rules grant nothing). */
function unreachable(policy: Policy): Finding[] {
  const granted = new Set<string>();
  for (const r of policy.rules) {
    if (r.approval === 'deny') continue;
    const c = coverage(policy, r);
    for (const t of c.targets) {
      for (const k of c.tasks) {
        if (policy.tasks[k] && sharedAccounts(policy.tasks[k], policy.targets[t]).length) granted.add(`${t}\0${k}`);
      }
    }
  }
  const pairs = [...granted].map((p) => p.split('\0'));
  const out: Finding[] = [];
  for (const t of Object.keys(policy.targets)) {
    if (!pairs.some(([gt]) => gt === t)) out.push({ level: 'warning', file: 'policy', path: ['targets', t], problem: `no rule grants any task on target ${t}: nobody can get access to it` });
  }
  for (const k of Object.keys(policy.tasks)) {
    if (!pairs.some(([, gk]) => gk === k)) out.push({ level: 'warning', file: 'policy', path: ['tasks', k], problem: `no rule grants task ${k} on any target: nobody can request it` });
  }
  return out;
}
