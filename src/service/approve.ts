/**
 * Approval workflow: approvers of the deciding rule say yes (N distinct people, never the
 * requester) or no. At the final approval the policy decides again with the current policy
 * (policy/recheck.ts): the certificate is what is still allowed now, or the request is denied.
 * The certificate's window starts at the final approval.
 */
import { JitError } from '../errors.js';
import type { Identity } from '../policy/decide.js';
import { recheckAtSigning } from '../policy/recheck.js';
import type { RequestRecord } from '../store/types.js';
import type { ServiceDeps } from './deps.js';
import { countLiveGrants, signRequest } from './issue.js';
import { withRequestLock } from './locks.js';

export function isApproverOf(identity: Identity, rec: RequestRecord): boolean {
  const groups = rec.approval?.approvers ?? [];
  return groups.some((g) => identity.groups.includes(g));
}

export function isAdmin(deps: ServiceDeps, identity: Identity): boolean {
  return deps.config.adminGroups.some((g) => identity.groups.includes(g));
}

/** A pending request past its expiry becomes expired (audited) and can no longer be approved. */
async function expireIfDue(deps: ServiceDeps, rec: RequestRecord): Promise<RequestRecord> {
  if (rec.status !== 'pending' || rec.expiresAt > deps.clock.now()) return rec;
  await deps.audit.append({ type: 'expire', id: rec.id, user: rec.user, target: rec.target, task: rec.task });
  const expired: RequestRecord = { ...rec, status: 'expired' };
  await deps.state.putRequest(expired);
  return expired;
}

async function loadPendingForDecision(deps: ServiceDeps, identity: Identity, id: string): Promise<RequestRecord> {
  const found = await deps.state.getRequest(id);
  if (!found) throw new JitError('not_found', `no request ${id}`);
  if (!isApproverOf(identity, found)) {
    throw new JitError('forbidden', `only members of ${found.approval?.approvers.join(', ') || 'an approver group'} may decide request ${id}`);
  }
  if (found.user === identity.user) throw new JitError('forbidden', 'you cannot approve or deny your own request');
  const rec = await expireIfDue(deps, found);
  if (rec.status !== 'pending') throw new JitError('conflict', `request ${id} is ${rec.status}, not pending`);
  return rec;
}

export async function approveRequest(deps: ServiceDeps, identity: Identity, id: string, comment?: string): Promise<RequestRecord> {
  return withRequestLock(id, async () => {
    const rec = await loadPendingForDecision(deps, identity, id);
    if (rec.approvals.some((a) => a.by === identity.user)) return rec; // one approver counts once
    const now = deps.clock.now();
    const approvals = [...rec.approvals, { by: identity.user, at: now, ...(comment ? { comment } : {}) }];
    await deps.audit.append({ type: 'approve', id, user: rec.user, by: identity.user, comment, approvals: approvals.length, needed: rec.approval?.count ?? 1 });
    const updated: RequestRecord = { ...rec, approvals };
    if (approvals.length < (rec.approval?.count ?? 1)) {
      await deps.state.putRequest(updated);
      return updated;
    }
    return signIfStillAllowed(deps, updated, now);
  });
}

/** The final approval: decide again under the current policy, then issue, deny or keep waiting. */
async function signIfStillAllowed(deps: ServiceDeps, rec: RequestRecord, now: number): Promise<RequestRecord> {
  const policy = deps.policy();
  // This request holds one of the user's maxActive slots while pending; do not count it against itself.
  const activeGrants = policy.rules.some((r) => r.maxActive !== undefined) ? (await countLiveGrants(deps, rec.user, now, 0)) - 1 : 0;
  const check = recheckAtSigning(rec, policy, new Date(now), {
    activeGrants: Math.max(0, activeGrants),
    config: { maxTtl: deps.config.maxTtl, backdate: deps.config.backdate },
  });
  const about = { id: rec.id, user: rec.user, target: rec.target, task: rec.task, rule: rec.rule };

  if (check.verdict === 'deny') {
    const reason = `denied at signing: ${check.reason}`;
    await deps.audit.append({ type: 'deny', ...about, stage: 'signing', reasons: [{ step: 'recheck', message: reason }] });
    const denied: RequestRecord = { ...rec, status: 'denied', denial: { at: now, reason } };
    await deps.state.putRequest(denied);
    deps.metrics.denied.inc();
    deps.notify.send('denied', denied);
    return denied;
  }

  const kept = rec.approvals.filter((a) => check.approvedBy.includes(a.by));
  if (check.verdict === 'wait') {
    await deps.audit.append({ type: 'decision', ...about, stage: 'signing', decision: 'wait', dropped: check.dropped, approvals: kept.length });
    const waiting: RequestRecord = { ...rec, approvals: kept };
    await deps.state.putRequest(waiting);
    return waiting;
  }

  if (check.changes.length) {
    await deps.audit.append({ type: 'decision', ...about, stage: 'signing', decision: 'issue', changes: check.changes });
  }
  const { window } = check;
  const draft = { ...rec.draft, ttlSeconds: window.ttlSeconds, backdateSeconds: window.backdateSeconds, ...(window.notAfter !== undefined ? { notAfter: window.notAfter } : {}) };
  const issued = await signRequest(deps, { ...rec, approvals: kept, draft }, now);
  deps.notify.send('approved', issued);
  return issued;
}

export async function denyRequest(deps: ServiceDeps, identity: Identity, id: string, reason: string): Promise<RequestRecord> {
  return withRequestLock(id, async () => {
    const rec = await loadPendingForDecision(deps, identity, id);
    const now = deps.clock.now();
    await deps.audit.append({ type: 'reject', id, user: rec.user, by: identity.user, reason });
    const denied: RequestRecord = { ...rec, status: 'denied', denial: { by: identity.user, at: now, reason } };
    await deps.state.putRequest(denied);
    deps.metrics.denied.inc();
    deps.notify.send('denied', denied);
    return denied;
  });
}

/** What GET /v1/requests/:id shows: own requests, or any for approvers of it, admins and auditors. */
export async function viewRequest(deps: ServiceDeps, identity: Identity, id: string): Promise<RequestRecord> {
  const rec = await deps.state.getRequest(id);
  const auditor = deps.config.auditorGroups.some((g) => identity.groups.includes(g));
  if (!rec || !(rec.user === identity.user || isApproverOf(identity, rec) || isAdmin(deps, identity) || auditor)) {
    throw new JitError('not_found', `no request ${id}`);
  }
  // Re-read under the lock: an approval, denial or another viewer may have moved it on meanwhile.
  return withRequestLock(id, async () => expireIfDue(deps, (await deps.state.getRequest(id)) ?? rec));
}
