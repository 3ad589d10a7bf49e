/**
 * Approval workflow: approvers of the deciding rule say yes (N distinct people, never the
 * requester) or no. At the final approval the policy decides again with the current policy
 * (policy/recheck.ts): the certificate is what is still allowed now, or the request is denied.
 * The certificate's window starts at the final approval.
 */
import { JitError } from '../errors.js';
import type { Identity } from '../policy/decide.js';
import { recheckAtSigning } from '../policy/recheck.js';
import type { PendingRequest, RequestRecord } from '../store/types.js';
import { assertMayDecide, maySee } from './access.js';
import type { ServiceDeps } from './deps.js';
import { countLiveGrants, signRequest } from './issue.js';
import { approve, confirmAtSigning, deny, denyAtSigning, dropApprovals, expire, type Transition } from './request.js';

/** Appends the transition's audit events (durably, in order), then stores its record. */
async function commit<R extends RequestRecord>(deps: ServiceDeps, t: Transition<R>): Promise<R> {
  for (const e of t.events) await deps.audit.append(e);
  await deps.state.putRequest(t.record);
  return t.record;
}

/** A pending request past its expiry becomes expired (audited) and can no longer be approved. */
async function expireIfDue(deps: ServiceDeps, rec: RequestRecord): Promise<RequestRecord> {
  if (rec.status !== 'pending' || rec.expiresAt > deps.clock.now()) return rec;
  return commit(deps, expire(rec, deps.clock.now()));
}

async function loadPendingForDecision(deps: ServiceDeps, identity: Identity, id: string): Promise<PendingRequest> {
  const found = await deps.state.getRequest(id);
  if (!found) throw new JitError('not_found', `no request ${id}`);
  assertMayDecide(identity, found);
  const rec = await expireIfDue(deps, found);
  if (rec.status !== 'pending') throw new JitError('conflict', `request ${id} is ${rec.status}, not pending`);
  return rec;
}

export async function approveRequest(deps: ServiceDeps, identity: Identity, id: string, comment?: string): Promise<RequestRecord> {
  return deps.runtime.locks.run(id, async () => {
    const rec = await loadPendingForDecision(deps, identity, id);
    const now = deps.clock.now();
    const step = approve(rec, identity.user, now, comment);
    if (step.events.length === 0) return rec; // one approver counts once
    if (!step.complete) return commit(deps, step);
    for (const e of step.events) await deps.audit.append(e);
    return signIfStillAllowed(deps, step.record, now);
  });
}

/** The final approval: decide again under the current policy, then issue, deny or keep waiting. */
async function signIfStillAllowed(deps: ServiceDeps, rec: PendingRequest, now: number): Promise<RequestRecord> {
  const policy = deps.policy();
  // This request holds one of the user's maxActive slots while pending; do not count it against itself.
  const activeGrants = policy.rules.some((r) => r.maxActive !== undefined) ? (await countLiveGrants(deps, rec.user, now, 0)) - 1 : 0;
  const check = recheckAtSigning(rec, policy, new Date(now), {
    activeGrants: Math.max(0, activeGrants),
    config: { maxTtl: deps.config.maxTtl, backdate: deps.config.backdate },
  });

  if (check.verdict === 'deny') {
    const denied = await commit(deps, denyAtSigning(rec, check.reason, now));
    deps.metrics.denied.inc();
    deps.notify.send('denied', denied);
    return denied;
  }
  if (check.verdict === 'wait') return commit(deps, dropApprovals(rec, check.approvedBy, check.dropped));

  const confirmed = confirmAtSigning(rec, check.window, check.approvedBy, check.changes);
  for (const e of confirmed.events) await deps.audit.append(e);
  const issued = await signRequest(deps, confirmed.record, now);
  deps.notify.send('approved', issued);
  return issued;
}

export async function denyRequest(deps: ServiceDeps, identity: Identity, id: string, reason: string): Promise<RequestRecord> {
  return deps.runtime.locks.run(id, async () => {
    const rec = await loadPendingForDecision(deps, identity, id);
    const denied = await commit(deps, deny(rec, identity.user, reason, deps.clock.now()));
    deps.metrics.denied.inc();
    deps.notify.send('denied', denied);
    return denied;
  });
}

/** What GET /v1/requests/:id shows: a request the caller may see (access.ts), expired if due. */
export async function viewRequest(deps: ServiceDeps, identity: Identity, id: string): Promise<RequestRecord> {
  const rec = await deps.state.getRequest(id);
  if (!rec || !maySee(deps, identity, rec)) throw new JitError('not_found', `no request ${id}`);
  // Re-read under the lock: an approval, denial or another viewer may have moved it on meanwhile.
  return deps.runtime.locks.run(id, async () => expireIfDue(deps, (await deps.state.getRequest(id)) ?? rec));
}

/** What GET /v1/requests lists: the requests the caller may see, a pending one past its expiry shown as expired. */
export async function listRequests(deps: ServiceDeps, identity: Identity, status?: RequestRecord['status']): Promise<RequestRecord[]> {
  // 'expired' also asks for pending ones: a pending request past its expiry is expired before the pruner says so.
  const wanted = status === 'expired' ? (['pending', 'expired'] as const) : status;
  const all = await deps.state.listRequests(wanted ? { status: wanted } : {});
  const now = deps.clock.now();
  const shown = all
    .filter((rec) => maySee(deps, identity, rec))
    .map((rec): RequestRecord => (rec.status === 'pending' && rec.expiresAt <= now ? expire(rec, now).record : rec));
  return status ? shown.filter((rec) => rec.status === status) : shown;
}
