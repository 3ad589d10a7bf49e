/**
 * The decision again, at signing time (the final approval): a request is approved against the
 * policy of the moment it was made, but signed under the policy of now. Pure, like decide().
 *
 * Outcomes:
 * - issue: the current policy allows the same grant to the requester (groups as the current
 *   policy says), and enough approvals come from people who are approvers now. When the only
 *   change is a lower ttl limit, the shorter window is issued: a strict subset of what the
 *   approvers saw. A stricter backdate or identity cap is kept the same way.
 * - deny: anything else the policy changed — the user is gone, disabled or no longer matched,
 *   the rule, target, task or account is gone or now denies, principals, options, extensions
 *   or the approval requirement differ. The reason names what changed.
 * - wait: the requirement is the same but some approvals came from people who are no longer
 *   approvers (or no longer users); those are dropped and more approvals are needed.
 */
import { isJitError } from '../errors.js';
import { formatDuration } from './duration.js';
import { decide, ttlLimit, type AccessRequest, type CertDraft, type DecideContext, type Decision, type Identity } from './decide.js';
import type { ApproverSet, Policy } from './schema.js';

/** What the approvers saw (a stored request; the store's RequestRecord fits). */
export type ApprovedRequest = Omit<AccessRequest, 'ttl'> & {
  user: string;
  /** the rule that decided when the request was made */
  rule?: string;
  draft: Pick<CertDraft, 'principals' | 'ttlSeconds' | 'notAfter' | 'criticalOptions' | 'extensions'> & { backdateSeconds?: number };
  approval?: ApproverSet;
  approvals: Array<{ by: string }>;
};

/** The parts of the certificate draft the current policy may still shrink. */
export interface Window {
  ttlSeconds: number;
  backdateSeconds: number;
  notAfter?: number;
}

export type Recheck =
  | { verdict: 'issue'; window: Window; approvedBy: string[]; changes: string[] }
  | { verdict: 'deny'; reason: string }
  | { verdict: 'wait'; approvedBy: string[]; dropped: string[] };

export function recheckAtSigning(req: ApprovedRequest, policy: Policy, now: Date, ctx: DecideContext): Recheck {
  const identity = currentIdentity(policy, req);
  let d = decideAgain(req, identity, policy, now, ctx, req.draft.ttlSeconds);
  if ('error' in d) return deny(d.error);
  const lowered = d.decision === 'deny' ? loweredTtlLimit(req, policy, d, ctx) : undefined;
  if (lowered !== undefined) {
    d = decideAgain(req, identity, policy, now, ctx, lowered);
    if ('error' in d) return deny(d.error);
  }
  if (d.decision === 'deny' || !d.certDraft) return deny(`the policy now refuses it: ${refusal(req, policy, d)}`);

  const draft = d.certDraft;
  const grantChange = changedGrant(req, draft);
  if (grantChange) return deny(`the policy now grants something different: ${grantChange}`);

  const changes: string[] = [];
  const window: Window = {
    ttlSeconds: draft.ttlSeconds,
    backdateSeconds: Math.min(req.draft.backdateSeconds ?? draft.backdateSeconds, draft.backdateSeconds),
    ...(req.draft.notAfter !== undefined ? { notAfter: req.draft.notAfter } : {}),
  };
  if (draft.ttlSeconds < req.draft.ttlSeconds) {
    changes.push(`ttl shortened from ${formatDuration(req.draft.ttlSeconds)} to ${formatDuration(draft.ttlSeconds)}: ${stepWhy(d, 'resolveTtl')}`);
  }

  if (d.decision === 'auto') return { verdict: 'issue', window, approvedBy: req.approvals.map((a) => a.by), changes };
  const needed = d.approval!;
  if (!req.approval || !sameRequirement(req.approval, needed)) {
    return deny(`the approval it needs changed from ${requirement(req.approval)} to ${requirement(needed)}; request again`);
  }
  const approvedBy = req.approvals.map((a) => a.by).filter((by) => stillApprover(policy, by, req.user, needed));
  const dropped = req.approvals.map((a) => a.by).filter((by) => !approvedBy.includes(by));
  if (approvedBy.length < needed.count) return { verdict: 'wait', approvedBy, dropped };
  return { verdict: 'issue', window, approvedBy, changes: dropped.length ? [...changes, `approvals of ${dropped.join(', ')} no longer count`] : changes };
}

/**
 * The requester as the current policy sees them. No expiry: the session that made the request
 * may be gone; its end, when a rule capped to it, is kept in the draft's notAfter and applied
 * when signing.
 */
function currentIdentity(policy: Policy, req: ApprovedRequest): Identity {
  const user = Object.hasOwn(policy.users, req.user) ? policy.users[req.user] : undefined;
  return { user: req.user, groups: user ? [...user.groups] : [], via: 'ssh-key' /* not consulted by decide() */ };
}

function decideAgain(
  req: ApprovedRequest,
  identity: Identity,
  policy: Policy,
  now: Date,
  ctx: DecideContext,
  ttlSeconds: number,
): Decision | { error: string } {
  const request: AccessRequest = {
    target: req.target,
    task: req.task,
    account: req.account,
    ttl: ttlSeconds,
    ticket: req.ticket,
    reason: req.reason,
    sourceAddress: req.sourceAddress,
  };
  try {
    return decide(request, identity, policy, now, ctx);
  } catch (e) {
    // A stored field the current rules refuse (e.g. text accepted by an older version).
    if (isJitError(e)) return { error: `the request no longer passes validation: ${e.message}` };
    throw e;
  }
}

/** When the refusal was only that the ttl now exceeds a lower limit: that limit (else undefined). */
function loweredTtlLimit(req: ApprovedRequest, policy: Policy, d: Decision, ctx: DecideContext): number | undefined {
  if (d.reasons[0]?.step !== 'resolveTtl' || d.rule === undefined) return undefined;
  const rule = policy.rules.find((r) => r.name === d.rule);
  const task = Object.hasOwn(policy.tasks, req.task) ? policy.tasks[req.task] : undefined;
  if (!rule || !task) return undefined;
  const { max } = ttlLimit(req.task, task, rule, policy.defaults, ctx.config);
  return max < req.draft.ttlSeconds ? max : undefined;
}

/** The refusal in words; "no rule matches" is made specific to the rule that decided before. */
function refusal(req: ApprovedRequest, policy: Policy, d: Decision): string {
  const message = d.reasons[0]?.message ?? 'denied';
  if (d.reasons[0]?.step !== 'ruleMatches' || req.rule === undefined) return message;
  if (!policy.rules.some((r) => r.name === req.rule)) return `${message} (rule ${req.rule} no longer exists)`;
  const why = d.steps.find((s) => s.step === 'ruleMatches' && s.rule === req.rule)?.why;
  return `${message} (rule ${req.rule} no longer applies: ${why})`;
}

/** What differs in the grant itself (not its length), or null. */
function changedGrant(req: ApprovedRequest, now: NonNullable<Decision['certDraft']>): string | null {
  if (req.account !== undefined && now.account !== req.account) return `account ${req.account} → ${now.account}`;
  if (!sameList(req.draft.principals, now.principals)) return `principals ${req.draft.principals.join(',')} → ${now.principals.join(',')}`;
  if (!sameMap(req.draft.criticalOptions, now.criticalOptions)) {
    return `critical options ${describeMap(req.draft.criticalOptions)} → ${describeMap(now.criticalOptions)}`;
  }
  if (!sameMap(req.draft.extensions, now.extensions)) {
    return `extensions ${Object.keys(req.draft.extensions).join(',') || 'none'} → ${Object.keys(now.extensions).join(',') || 'none'}`;
  }
  return null;
}

/** An earlier approver still counts only as a current, active user in a current approver group. */
function stillApprover(policy: Policy, by: string, requester: string, set: ApproverSet): boolean {
  if (by === requester || !Object.hasOwn(policy.users, by)) return false;
  const u = policy.users[by];
  return !u.disabled && u.groups.some((g) => set.approvers.includes(g));
}

function sameRequirement(a: ApproverSet, b: ApproverSet): boolean {
  return a.count === b.count && sameList([...a.approvers].sort(), [...b.approvers].sort());
}

function requirement(a: ApproverSet | undefined): string {
  return a ? `${a.count} of ${a.approvers.join(', ')}` : 'none';
}

function stepWhy(d: Decision, ...steps: string[]): string {
  return d.steps.filter((s) => steps.includes(s.step) && s.ok).map((s) => s.why).join('; ');
}

function deny(reason: string): Recheck {
  return { verdict: 'deny', reason };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameMap(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort();
  return sameList(ka, Object.keys(b).sort()) && ka.every((k) => a[k] === b[k]);
}

function describeMap(m: Record<string, string>): string {
  const entries = Object.entries(m);
  return entries.length ? entries.map(([k, v]) => (v ? `${k}=${v}` : k)).join(',') : 'none';
}
