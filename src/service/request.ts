/**
 * The request lifecycle, as one state machine:
 *
 *   (policy allows) ─request→ Pending ─approve→ Pending (one more approval)
 *                               ├─issue→  Issued ─revoke→ Revoked
 *                               ├─deny→   Denied
 *                               ├─expire→ Expired
 *                               └─revoke→ Revoked
 *   (policy refuses) ─refuse→ nothing stored, one `deny` audit record
 *
 * Each transition is pure: it takes the record and the facts (the clock reading, who acts, the
 * policy decision, the signed certificate) and returns the next record and the audit events to
 * append. The use cases (issue.ts, approve.ts, revoke.ts) append the events durably, then store
 * the record. A transition takes only the statuses it may leave, so an illegal one does not
 * type-check; a record that arrives untyped (JSON) in the wrong status, or facts that forbid the
 * step (approving one's own request, expiring before the deadline), throw JitError('conflict'
 * or 'forbidden') and change nothing.
 */
import { JitError } from '../errors.js';
import type { AutoDecision, DeniedDecision, NeedsApprovalDecision } from '../policy/decide.js';
import type { Window as SigningWindow } from '../policy/recheck.js';
import type {
  AuditEvent,
  DeniedRequest,
  ExpiredRequest,
  IssuedCert,
  IssuedRequest,
  PendingRequest,
  RequestRecord,
  RequestStatus,
  RevokedRequest,
} from '../store/types.js';

export type {
  RequestRecord as Request,
  PendingRequest as Pending,
  IssuedRequest as Issued,
  DeniedRequest as Denied,
  ExpiredRequest as Expired,
  RevokedRequest as Revoked,
  RequestStatus,
} from '../store/types.js';
export { REQUEST_STATUSES } from '../store/types.js';

/** A request id: `req_` and 12 random bytes, base64url. The one pattern the API edge and the CLI check. */
export const REQUEST_ID_RE = /^req_[A-Za-z0-9_-]{16}$/;

export function newRequestId(random: (bytes: number) => Buffer): string {
  return 'req_' + random(12).toString('base64url');
}

/** The next record and what to audit before storing it (in order). */
export interface Transition<R extends RequestRecord> {
  record: R;
  events: AuditEvent[];
}

/** Statuses a request can still leave. */
export type Live = PendingRequest | IssuedRequest;

/** Throws unless `rec` is in one of `allowed`: the run-time half of the typed transitions. */
function expectStatus<S extends RequestStatus>(rec: RequestRecord, allowed: readonly S[], doing: string): asserts rec is Extract<RequestRecord, { status: S }> {
  if (!(allowed as readonly RequestStatus[]).includes(rec.status)) {
    throw new JitError('conflict', `request ${rec.id} is ${rec.status}, not ${allowed.join(' or ')}: cannot ${doing} it`);
  }
}

const about = (rec: Pick<RequestRecord, 'id' | 'user' | 'target' | 'task'>) => ({ id: rec.id, user: rec.user, target: rec.target, task: rec.task });

/** What a new request is, apart from the policy's decision. */
export interface NewRequestFacts {
  /** random, made by the caller */
  id: string;
  user: string;
  target: string;
  task: string;
  ticket?: string;
  reason?: string;
  /** canonical `type base64` and its 'SHA256:…' fingerprint */
  publicKey: string;
  keyFingerprint: string;
  sourceAddress?: string;
  /** ms since the epoch */
  now: number;
  /** how long it may wait for approvals */
  pendingTtlSeconds: number;
}

/**
 * A request the policy allows becomes Pending. With approval needed it is audited (`request`)
 * now; an automatic one is audited by its `issue` record alone (it is signed at once).
 */
export function request(facts: NewRequestFacts, decision: AutoDecision | NeedsApprovalDecision): Transition<PendingRequest> {
  const record: PendingRequest = {
    id: facts.id,
    user: facts.user,
    target: facts.target,
    task: facts.task,
    ticket: facts.ticket,
    rule: decision.rule,
    account: decision.certDraft.account,
    reason: facts.reason,
    status: 'pending',
    createdAt: facts.now,
    expiresAt: facts.now + facts.pendingTtlSeconds * 1000,
    publicKey: facts.publicKey,
    keyFingerprint: facts.keyFingerprint,
    sourceAddress: facts.sourceAddress,
    draft: decision.certDraft,
    approval: decision.approval,
    webhook: decision.webhook,
    approvals: [],
  };
  if (decision.decision === 'auto') return { record, events: [] };
  const event: AuditEvent = {
    type: 'request',
    ...about(record),
    ticket: record.ticket,
    rule: record.rule,
    status: 'pending',
    account: record.account,
    approvers: decision.approval.approvers,
    count: decision.approval.count,
    reason: record.reason,
    keyFingerprint: record.keyFingerprint,
    sourceAddress: record.sourceAddress,
  };
  return { record, events: [event] };
}

/** A request the policy refuses is not stored: one `deny` record says who asked and why not. */
export function refuse(facts: Pick<NewRequestFacts, 'id' | 'user' | 'target' | 'task' | 'ticket' | 'sourceAddress'>, decision: DeniedDecision): AuditEvent {
  return {
    type: 'deny',
    ...about(facts),
    ticket: facts.ticket,
    rule: decision.rule,
    reasons: decision.reasons,
    sourceAddress: facts.sourceAddress,
  };
}

/** Approvals the request still needs (0 = ready to sign). */
export function approvalsMissing(rec: PendingRequest): number {
  return Math.max(0, (rec.approval?.count ?? 1) - rec.approvals.length);
}

/**
 * One approver says yes. The requester never approves their own request; one person counts once
 * (a repeated approval changes nothing and is not audited again). `complete` says it may be signed.
 */
export function approve(rec: PendingRequest, by: string, now: number, comment?: string): Transition<PendingRequest> & { complete: boolean } {
  expectStatus(rec, ['pending'], 'approve');
  if (by === rec.user) throw new JitError('forbidden', 'you cannot approve or deny your own request');
  if (rec.expiresAt <= now) throw new JitError('conflict', `request ${rec.id} expired; it can no longer be approved`);
  if (rec.approvals.some((a) => a.by === by)) return { record: rec, events: [], complete: false };
  const record: PendingRequest = { ...rec, approvals: [...rec.approvals, { by, at: now, ...(comment ? { comment } : {}) }] };
  const needed = rec.approval?.count ?? 1;
  const event: AuditEvent = { type: 'approve', id: rec.id, user: rec.user, by, comment, approvals: record.approvals.length, needed };
  return { record, events: [event], complete: approvalsMissing(record) === 0 };
}

/** An approver says no. */
export function deny(rec: PendingRequest, by: string, reason: string, now: number): Transition<DeniedRequest> {
  expectStatus(rec, ['pending'], 'deny');
  if (by === rec.user) throw new JitError('forbidden', 'you cannot approve or deny your own request');
  const record: DeniedRequest = { ...rec, status: 'denied', denial: { by, at: now, reason } };
  return { record, events: [{ type: 'reject', id: rec.id, user: rec.user, by, reason }] };
}

/** Nobody approved it in time. Only once its deadline has passed. */
export function expire(rec: PendingRequest, now: number): Transition<ExpiredRequest> {
  expectStatus(rec, ['pending'], 'expire');
  if (rec.expiresAt > now) throw new JitError('conflict', `request ${rec.id} is pending until ${new Date(rec.expiresAt).toISOString()}; it has not expired`);
  return { record: { ...rec, status: 'expired' }, events: [expiryEvent(rec)] };
}

/** The `expire` record, also for requests the store's pruner expired (StateStore.prune). */
export function expiryEvent(rec: Pick<RequestRecord, 'id' | 'user' | 'target' | 'task'>): AuditEvent {
  return { type: 'expire', ...about(rec) };
}

/**
 * At the final approval the current policy refuses what was approved (policy/recheck.ts): the
 * request ends denied, by nobody in particular; the `deny` record names the signing stage.
 */
export function denyAtSigning(rec: PendingRequest, why: string, now: number): Transition<DeniedRequest> {
  expectStatus(rec, ['pending'], 'deny');
  const reason = `denied at signing: ${why}`;
  const record: DeniedRequest = { ...rec, status: 'denied', denial: { at: now, reason } };
  const event: AuditEvent = { type: 'deny', ...about(rec), rule: rec.rule, stage: 'signing', reasons: [{ step: 'recheck', message: reason }] };
  return { record, events: [event] };
}

/**
 * At the final approval some approvers no longer are: their approvals are dropped (only those
 * of `stillApprovers` stay) and the request waits for more.
 */
export function dropApprovals(rec: PendingRequest, stillApprovers: readonly string[], dropped: readonly string[]): Transition<PendingRequest> {
  expectStatus(rec, ['pending'], 'drop approvals of');
  const approvals = rec.approvals.filter((a) => stillApprovers.includes(a.by));
  const event: AuditEvent = { type: 'decision', ...about(rec), rule: rec.rule, stage: 'signing', decision: 'wait', dropped, approvals: approvals.length };
  return { record: { ...rec, approvals }, events: [event] };
}

/**
 * At the final approval the current policy allows the grant, perhaps shorter (a lowered ttl
 * limit) or with fewer approvals counted: the request to sign, and a `decision` record when
 * something changed.
 */
export function confirmAtSigning(rec: PendingRequest, window: SigningWindow, stillApprovers: readonly string[], changes: readonly string[]): Transition<PendingRequest> {
  expectStatus(rec, ['pending'], 'sign');
  const draft = { ...rec.draft, ttlSeconds: window.ttlSeconds, backdateSeconds: window.backdateSeconds, ...(window.notAfter !== undefined ? { notAfter: window.notAfter } : {}) };
  const record: PendingRequest = { ...rec, approvals: rec.approvals.filter((a) => stillApprovers.includes(a.by)), draft };
  const events: AuditEvent[] = changes.length ? [{ type: 'decision', ...about(rec), rule: rec.rule, stage: 'signing', decision: 'issue', changes }] : [];
  return { record, events };
}

/** The certificate's window for a request signed at `nowSec` (Unix seconds). */
export function certificateWindow(rec: PendingRequest, nowSec: number, defaultBackdateSeconds: number): { validAfter: number; validBefore: number } {
  const validAfter = nowSec - (rec.draft.backdateSeconds ?? defaultBackdateSeconds);
  const validBefore = Math.min(nowSec + rec.draft.ttlSeconds, rec.draft.notAfter ?? Infinity);
  if (validBefore <= nowSec) {
    throw new JitError('conflict', `request ${rec.id}: the requester's login session ended before it could be signed (the rule caps certificates to it); request again`);
  }
  return { validAfter, validBefore };
}

/** The certificate is signed (its text included): the request is Issued. */
export function issue(rec: PendingRequest, cert: IssuedCert & { certificate: string }): Transition<IssuedRequest> {
  expectStatus(rec, ['pending'], 'issue');
  if (approvalsMissing(rec) > 0 && rec.approval !== undefined) {
    throw new JitError('conflict', `request ${rec.id} still needs ${approvalsMissing(rec)} approval(s)`);
  }
  const event: AuditEvent = {
    type: 'issue',
    ...about(rec),
    account: rec.account,
    ticket: rec.ticket,
    reason: rec.reason, // the access report's "why" for grants that never waited for approval
    rule: rec.rule,
    serial: cert.serial,
    keyId: cert.keyId,
    principals: rec.draft.principals,
    criticalOptions: rec.draft.criticalOptions,
    extensions: rec.draft.extensions,
    validAfter: cert.validAfter,
    validBefore: cert.validBefore,
    ca: cert.caFingerprint,
    keyFingerprint: rec.keyFingerprint,
    approvals: rec.approvals.map((a) => a.by),
    sourceAddress: rec.sourceAddress,
    publicKey: rec.publicKey,
    certificate: cert.certificate,
  };
  return { record: { ...rec, status: 'issued', cert }, events: [event] };
}

/** Ends a live request: a pending one can no longer be approved, an issued one's certificate joins the KRL. */
export function revoke(rec: Live, by: string, reason: string | undefined, at: number): Transition<RevokedRequest> {
  expectStatus(rec, ['pending', 'issued'], 'revoke');
  const event: AuditEvent = {
    type: 'revoke',
    id: rec.id,
    user: rec.user,
    by,
    reason,
    serial: rec.cert?.serial,
    ca: rec.cert?.caFingerprint,
    // Lets a restart rebuild the KRL entry from this record alone (the audit is the record).
    validBefore: rec.cert?.validBefore,
  };
  return { record: { ...rec, status: 'revoked', revokedAt: at, revokedBy: by }, events: [event] };
}

export function isLive(rec: RequestRecord): rec is Live {
  return rec.status === 'pending' || rec.status === 'issued';
}
