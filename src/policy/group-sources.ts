/**
 * Groups the policy names (rules, approvers, admin/auditor groups) that no `users:` entry has.
 * Without SSO such a name can never match: most likely a typo. With SSO it may come from the
 * IdP's groups claim, which only the IdP knows; `policy validate` says so either way. Pure.
 */
import type { Policy } from './schema.js';

export interface UnprovidedGroup {
  /** where it is named, e.g. rules[2].groups */
  path: string;
  group: string;
}

export function groupsNoUserHas(policy: Policy, config: { adminGroups: readonly string[]; auditorGroups: readonly string[] }): UnprovidedGroup[] {
  const had = new Set(Object.values(policy.users).flatMap((u) => u.groups));
  const out: UnprovidedGroup[] = [];
  const check = (path: string, groups: readonly string[] | undefined) => {
    for (const group of groups ?? []) if (!had.has(group)) out.push({ path, group });
  };
  policy.rules.forEach((r, i) => {
    check(`rules[${i}].groups`, r.groups);
    if (typeof r.approval === 'object') check(`rules[${i}].approval.approvers`, r.approval.approvers);
    check(`rules[${i}].schedule.approvers`, r.schedule?.approvers);
  });
  check('adminGroups', config.adminGroups);
  check('auditorGroups', config.auditorGroups);
  return out;
}
