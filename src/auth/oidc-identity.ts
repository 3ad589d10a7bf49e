/**
 * Verified ID-token claims → the jit-ssh user name and IdP groups. Pure. Both end up in
 * principals, key IDs and file names, so both must pass the one name rule; anything else is a
 * refusal (never a silent rewrite that could make two people one).
 */
import { NAME_RE } from '../policy/names.js';

export interface ClaimMapping {
  usernameClaim: string;
  groupsClaim: string;
  /** When set, the e-mail fallback accepts only these domains (case-insensitive). */
  emailDomains?: readonly string[];
}

export type Mapped = { ok: true; user: string; groups: string[] } | { ok: false; reason: string };

/** A bound on groups per person: an IdP that sends more is misconfigured (or hostile). */
export const MAX_IDP_GROUPS = 256;

export function mapClaims(claims: Record<string, unknown>, m: ClaimMapping): Mapped {
  const user = userOf(claims, m);
  if (!user.ok) return user;
  const groups = groupsOf(claims[m.groupsClaim], m.groupsClaim);
  if (!groups.ok) return groups;
  return { ok: true, user: user.user, groups: groups.groups };
}

function userOf(claims: Record<string, unknown>, m: ClaimMapping): { ok: true; user: string } | { ok: false; reason: string } {
  const raw = claims[m.usernameClaim];
  let user: string;
  if (typeof raw === 'string' && m.usernameClaim !== 'email') {
    user = raw;
  } else if (raw === undefined || m.usernameClaim === 'email') {
    const local = verifiedEmailLocalPart(claims, m.emailDomains);
    if (!local.ok) return { ok: false, reason: `no ${m.usernameClaim} claim and ${local.reason}` };
    user = local.user;
  } else {
    return { ok: false, reason: `claim ${m.usernameClaim} is not a string` };
  }
  if (!NAME_RE.test(user)) return { ok: false, reason: `user name ${JSON.stringify(user.slice(0, 80))} breaks the name rule` };
  return { ok: true, user };
}

function verifiedEmailLocalPart(
  claims: Record<string, unknown>,
  domains: readonly string[] | undefined,
): { ok: true; user: string } | { ok: false; reason: string } {
  const email = claims.email;
  if (typeof email !== 'string') return { ok: false, reason: 'no email claim' };
  // An unverified address could name anyone; only the IdP's word that it is verified counts.
  if (claims.email_verified !== true) return { ok: false, reason: 'email is not verified' };
  const at = email.lastIndexOf('@');
  if (at <= 0) return { ok: false, reason: 'email has no local part' };
  const domain = email.slice(at + 1).toLowerCase();
  if (domains && !domains.some((d) => d.toLowerCase() === domain)) return { ok: false, reason: `email domain ${domain.slice(0, 80)} is not in oidc.emailDomains` };
  return { ok: true, user: email.slice(0, at) };
}

function groupsOf(raw: unknown, claim: string): { ok: true; groups: string[] } | { ok: false; reason: string } {
  if (raw === undefined) return { ok: true, groups: [] };
  if (!Array.isArray(raw)) return { ok: false, reason: `claim ${claim} is not a list` };
  if (raw.length > MAX_IDP_GROUPS) return { ok: false, reason: `claim ${claim} has more than ${MAX_IDP_GROUPS} groups` };
  for (const g of raw) {
    if (typeof g !== 'string' || !NAME_RE.test(g)) return { ok: false, reason: `claim ${claim} holds ${JSON.stringify(g)?.slice(0, 80)}, not a group name` };
  }
  return { ok: true, groups: [...new Set(raw as string[])].sort() };
}

/** An SSO user's groups: the IdP's ∪ those the policy gives the user (a `users:` entry is optional). */
export function withPolicyGroups(idpGroups: readonly string[], policyGroups: readonly string[] | undefined): string[] {
  return [...new Set([...idpGroups, ...(policyGroups ?? [])])].sort();
}
