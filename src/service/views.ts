/**
 * The API's response bodies: their types (which the CLI imports type-only, so nothing of the
 * server loads in it) and the functions that render a stored request as one. A view never
 * shows the raw record (no internal fields such as the webhook settings or the key line).
 */
import { JitError } from '../errors.js';
import type { IssuedRequest, PendingRequest, RequestRecord, RequestStatus } from '../store/types.js';

/** 201 to POST /v1/requests: the certificate, handed out once. */
export interface IssuedView {
  id: string;
  status: 'issued';
  certificate: string;
  serial: string;
  keyId: string;
  principals: string[];
  validAfter: string;
  validBefore: string;
}

/** 202 to POST /v1/requests: waiting for approvals. */
export interface PendingView {
  id: string;
  status: 'pending';
  approvalsNeeded: number;
  approvers: string[];
  expiresAt: string;
}

/** A stored grant. `certificate` is absent for an auto-issued grant read back later: it was
 * handed out once, the CA keeps only a compact index (the audit has the text). */
export type GrantView = Omit<IssuedView, 'certificate'> & { certificate?: string };

/** GET /v1/requests/:id, list entries, approve/deny/revoke answers: the common fields plus status-specific ones. */
export interface RequestView {
  id: string;
  status: RequestStatus;
  user?: string;
  target?: string;
  task?: string;
  account?: string;
  ticket?: string;
  reason?: string;
  rule?: string;
  createdAt?: string;
  approvals?: { by: string; at: string; comment?: string }[];
  // issued
  certificate?: string;
  serial?: string;
  keyId?: string;
  principals?: string[];
  validAfter?: string;
  validBefore?: string;
  // pending
  approvalsNeeded?: number;
  approvers?: string[];
  expiresAt?: string;
  // denied / revoked
  deniedBy?: string;
  denialReason?: string;
  revokedAt?: string;
  revokedBy?: string;
}

/** POST /v1/revocations */
export interface RevocationsView {
  revoked: { id: string; serial: string | null }[];
}

/** POST /v1/auth/challenge */
export interface ChallengeResponse {
  challenge: string;
  expiresAt: string;
}

/** POST /v1/auth/token */
export interface TokenResponse {
  token: string;
  expiresAt: string;
}

/** GET /v1/auth/methods: which logins the server offers. */
export interface AuthMethods {
  sshKey: boolean;
  oidc: { issuer: string; clientId: string; scopes: string[] } | null;
}

/** POST /v1/auth/oidc: a session token plus who the IdP says you are. */
export interface OidcTokenResponse extends TokenResponse {
  user: string;
  groups: string[];
}

const iso = (sec: number) => new Date(sec * 1000).toISOString();
const isoMs = (ms: number) => new Date(ms).toISOString();

/** The answer to the request that signed the certificate. */
export function issuedView(rec: IssuedRequest): IssuedView {
  const certificate = rec.cert.certificate;
  if (certificate === undefined) throw new JitError('internal', `request ${rec.id} has no certificate text`);
  return { ...grantView(rec), certificate };
}

export function grantView(rec: IssuedRequest): GrantView {
  return {
    id: rec.id,
    status: 'issued',
    certificate: rec.cert.certificate,
    serial: rec.cert.serial,
    keyId: rec.cert.keyId,
    principals: rec.draft.principals,
    validAfter: iso(rec.cert.validAfter),
    validBefore: iso(rec.cert.validBefore),
  };
}

export function pendingView(rec: PendingRequest): PendingView {
  const need = rec.approval?.count ?? 1;
  return {
    id: rec.id,
    status: 'pending',
    approvalsNeeded: Math.max(0, need - rec.approvals.length),
    approvers: rec.approval?.approvers ?? [],
    expiresAt: isoMs(rec.expiresAt),
  };
}

export function requestView(rec: RequestRecord): RequestView {
  const common = {
    id: rec.id,
    user: rec.user,
    target: rec.target,
    task: rec.task,
    account: rec.account,
    ticket: rec.ticket,
    reason: rec.reason,
    rule: rec.rule,
    createdAt: isoMs(rec.createdAt),
    approvals: rec.approvals.map((a) => ({ by: a.by, at: isoMs(a.at), comment: a.comment })),
  };
  switch (rec.status) {
    case 'issued':
      return { ...common, ...grantView(rec) };
    case 'pending':
      return { ...common, ...pendingView(rec) };
    case 'revoked':
      // Optional chaining although the types say present: records written by older versions.
      return { ...common, status: 'revoked', serial: rec.cert?.serial, revokedAt: rec.revokedAt ? isoMs(rec.revokedAt) : undefined, revokedBy: rec.revokedBy };
    case 'denied':
      return { ...common, status: 'denied', deniedBy: rec.denial?.by, denialReason: rec.denial?.reason };
    case 'expired':
      return { ...common, status: 'expired' };
  }
}
