/**
 * What the rest of jit-ssh sees of persistence. Two stores with different jobs:
 *  - AuditLog: the record. Append-only JSONL, hash-chained, durable before append() resolves.
 *  - StateStore: a cache of *live* state (pending requests, unexpired grants and revocations,
 *    bearer-token hashes). Small and bounded by prune(); everything in it also went to the audit.
 * Audit records carry an ISO `time`; units of state fields are noted below.
 */

/**
 * What callers append. Must be JSON data; bigint values are written as decimal strings. `type`
 * is open: the request lifecycle's events are made in service/request.ts, the others by the
 * use case that acts (auth, ca_rotate, …); readers skip types they do not know.
 */
export interface AuditEvent {
  type: string;
  [k: string]: unknown;
}

/** One line of audit.jsonl. hash = sha256hex(prevHash + canonicalJSON(record without hash)). */
export type AuditRecord = AuditEvent & {
  seq: number;
  /** ISO 8601, from the injected clock at append time. */
  time: string;
  prevHash: string;
  hash: string;
};

export interface AuditLog {
  /** Resolves once this record is on disk (fdatasync). Rejects with JitError('unavailable') if not. */
  append(event: AuditEvent): Promise<AuditRecord>;
  /** Durable records with seq > afterSeq, oldest first, at most `limit`. */
  tail(afterSeq: number, limit: number): Promise<AuditRecord[]>;
  /** Last durable record's seq and hash (0 and 64 zeros when empty). */
  head(): { seq: number; hash: string };
  /** Waits for in-flight appends, then closes the file. Later appends reject. */
  close(): Promise<void>;
}

/*
 * Units: event times (createdAt, expiresAt, approvals[].at, denial.at, revokedAt, token expiresAt)
 * are milliseconds since the epoch, like Date.now(). Certificate-window times (cert.validAfter,
 * cert.validBefore, CertRevocation.validBefore, KeyRevocation.until) are Unix *seconds*, as in the
 * certificate itself.
 */

export interface Approval {
  by: string;
  /** ms since the epoch. */
  at: number;
  comment?: string;
}

/** What the policy decided the certificate would be, kept so approval signs exactly that. */
export interface CertDraftSnapshot {
  account: string;
  principals: string[];
  ttlSeconds: number;
  /** validAfter = window start − backdate (clock skew); absent in records from before it existed. */
  backdateSeconds?: number;
  /** Unix seconds the certificate may not outlive (capTtlToIdentity), whenever it is signed. */
  notAfter?: number;
  criticalOptions: Record<string, string>;
  extensions: Record<string, string>;
}

export interface ApprovalRequirement {
  approvers: string[];
  count: number;
}

/** The certificate an issued request produced. */
export interface IssuedCert {
  /** Decimal string: serials are 64-bit and do not fit a JSON number. */
  serial: string;
  keyId: string;
  /** Unix seconds. */
  validAfter: number;
  validBefore: number;
  caFingerprint: string;
  /**
   * `…-cert-v01@openssh.com AAAA…` line. Absent on auto-issued grants read back from the
   * in-memory index: the certificate is handed out once, and the audit `issue` record keeps it.
   */
  certificate?: string;
}

/** Why a pending request ended denied: an approver said no (`by`), or the policy at signing. */
export interface Denial {
  by?: string;
  /** ms since the epoch. */
  at: number;
  reason: string;
}

/** What every access request has, whatever its status. The store interprets only
 * id, user, target, status, expiresAt, cert and keyFingerprint; the rest it just keeps. */
interface RequestBase {
  /** Made by the caller (random); the store never invents ids. */
  id: string;
  user: string;
  target: string;
  task: string;
  account?: string;
  ticket?: string;
  reason?: string;
  /** ms since the epoch. */
  createdAt: number;
  /** ms since the epoch: a pending request can no longer be approved after this. */
  expiresAt: number;
  /** Name of the policy rule that decided. */
  rule?: string;
  draft: CertDraftSnapshot;
  approval?: ApprovalRequirement;
  /** Notification settings of the deciding rule, opaque to the store. */
  webhook?: unknown;
  approvals: Approval[];
  /**
   * The requester's public key as canonical `type base64` (never the comment: it is free text
   * of up to kilobytes) and its 'SHA256:…' fingerprint. Empty on auto-issued grants read back
   * from the in-memory index.
   */
  publicKey: string;
  keyFingerprint?: string;
  sourceAddress?: string;
}

/*
 * One type per status (service/request.ts owns the transitions between them). Fields a status
 * cannot have are typed `?: undefined`, so reading `rec.cert?.serial` on any request compiles,
 * but a pending request with a certificate or an issued one without does not.
 */

/** Waiting for approvals until expiresAt. */
export interface PendingRequest extends RequestBase {
  status: 'pending';
  cert?: undefined;
  denial?: undefined;
  revokedAt?: undefined;
  revokedBy?: undefined;
}

/** Signed: the certificate exists (it may have expired since; see cert.validBefore). */
export interface IssuedRequest extends RequestBase {
  status: 'issued';
  cert: IssuedCert;
  denial?: undefined;
  revokedAt?: undefined;
  revokedBy?: undefined;
}

/** An approver, or the policy at signing, said no. Final. */
export interface DeniedRequest extends RequestBase {
  status: 'denied';
  denial: Denial;
  cert?: undefined;
  revokedAt?: undefined;
  revokedBy?: undefined;
}

/** Nobody approved it before expiresAt. Final. */
export interface ExpiredRequest extends RequestBase {
  status: 'expired';
  cert?: undefined;
  denial?: undefined;
  revokedAt?: undefined;
  revokedBy?: undefined;
}

/** Ended early: its certificate (absent when revoked while pending) is in the KRL. Final. */
export interface RevokedRequest extends RequestBase {
  status: 'revoked';
  cert?: IssuedCert;
  /** ms since the epoch. */
  revokedAt: number;
  revokedBy: string;
  denial?: undefined;
}

/** One access request and, once issued, its certificate; discriminated on `status`. */
export type RequestRecord = PendingRequest | IssuedRequest | DeniedRequest | ExpiredRequest | RevokedRequest;

export type RequestStatus = RequestRecord['status'];

/** Every status, in lifecycle order: the one list the API edge, the store and the CLI check against. */
export const REQUEST_STATUSES = ['pending', 'issued', 'denied', 'expired', 'revoked'] as const satisfies readonly RequestStatus[];

export function isRequestStatus(x: unknown): x is RequestStatus {
  return (REQUEST_STATUSES as readonly unknown[]).includes(x);
}

export interface RequestFilter {
  user?: string;
  status?: RequestStatus | readonly RequestStatus[];
  target?: string;
  /** Certificate serial (decimal string). */
  serial?: string;
  keyFingerprint?: string;
}

/** A revoked certificate, kept until it would have expired anyway. */
export interface CertRevocation {
  serial: string;
  caFingerprint: string;
  /** Unix seconds: the certificate's own validBefore; dropped from the KRL after this. */
  validBefore: number;
  /** ms since the epoch. */
  revokedAt: number;
  by: string;
  reason?: string;
}

/**
 * A revoked public key: every certificate for it is refused by hosts (KRL) and the CA refuses to
 * issue for it, until an admin lifts the revocation.
 */
export interface KeyRevocation {
  /** 'SHA256:…' */
  fingerprint: string;
  /**
   * Canonical `type base64` of the key when the CA knew it: the KRL lists it as an explicit key.
   * Otherwise the KRL lists the key by its SHA-256 hash (OpenSSH ≥ 7.9).
   */
  publicKey?: string;
  /** ms since the epoch. */
  revokedAt: number;
  by: string;
  reason?: string;
}

/** What a batch revocation records for each grant it ends. */
export interface RevocationMark {
  /** ms since the epoch. */
  at: number;
  by: string;
  reason?: string;
}

/** A consistent view of what the KRL must list; `krlVersion` grows whenever the set changes. */
export interface RevocationSnapshot {
  krlVersion: number;
  certificates: CertRevocation[];
  keys: KeyRevocation[];
}

/** Only the sha256 hash of a bearer token is ever stored, as the map key. */
export interface TokenRecord {
  user: string;
  groups?: string[];
  /** ms since the epoch. */
  expiresAt: number;
}

export interface PruneResult {
  /** Pending requests that passed expiresAt and are now 'expired': the caller audits them. */
  expired: RequestRecord[];
  removedRequests: number;
  removedRevocations: number;
  removedTokens: number;
}

/**
 * Every mutating method resolves once the change is durable (write + fsync, coalesced with other
 * changes of the same moment) and rejects with JitError('unavailable') if it could not be written.
 * Reads return copies: changing them changes nothing.
 */
export interface StateStore {
  /** Insert or replace by id. */
  putRequest(r: RequestRecord): Promise<void>;
  /**
   * Keeps an auto-issued grant in memory only, as a compact index entry (no certificate text,
   * key line or free text; see grant-index.ts): its durable copy is the audit log's `issue`
   * record, from which openStore rebuilds it after a restart. This keeps the state file off the
   * issuance hot path and memory small per live certificate; prune() drops it once expired. A
   * later putRequest/updateRequest of the same id makes it a persisted record.
   */
  recordIssued(r: RequestRecord): void;
  getRequest(id: string): Promise<RequestRecord | undefined>;
  /** Newest first (createdAt). */
  listRequests(filter?: RequestFilter): Promise<RequestRecord[]>;
  /**
   * Atomic read-modify-write: `mutate` gets a copy; if it throws nothing changes and the error
   * propagates. JitError('not_found') when there is no such id. Returns the new value.
   */
  updateRequest(id: string, mutate: (r: RequestRecord) => void): Promise<RequestRecord>;
  /** Status 'issued' with cert.validBefore > nowSec. */
  countActiveGrants(user: string, nowSec: number): Promise<number>;
  /** Status 'pending' with expiresAt > nowMs. */
  countPending(user: string, nowMs: number): Promise<number>;

  /** Returns false (and changes nothing) if this serial of this CA is already revoked. */
  addRevocation(rev: CertRevocation): Promise<boolean>;
  /** Returns false (and changes nothing) if this key fingerprint is already revoked. */
  addKeyRevocation(rev: KeyRevocation): Promise<boolean>;
  /** Lifts a key revocation; false when the key was not revoked. */
  removeKeyRevocation(fingerprint: string): Promise<boolean>;
  /** The revocation of this key, if it is revoked. */
  keyRevocation(fingerprint: string): Promise<KeyRevocation | undefined>;
  /**
   * Ends many grants at once: every listed request still issued or pending becomes 'revoked'
   * and its certificate joins the KRL, in one durable write (one KRL version step). Returns the
   * requests it changed; ids that are gone or already final are skipped.
   */
  revokeGrants(ids: readonly string[], mark: RevocationMark): Promise<RequestRecord[]>;
  /** Unexpired revocations only. */
  listRevocations(nowSec: number): Promise<RevocationSnapshot>;
  krlVersion(): Promise<number>;

  putToken(hash: string, rec: TokenRecord): Promise<void>;
  /** undefined when unknown or expired at nowMs. */
  getToken(hash: string, nowMs: number): Promise<TokenRecord | undefined>;
  deleteToken(hash: string): Promise<void>;

  /** Expire stale pending requests, drop what no longer matters. See state.ts for the rules. */
  prune(nowSec: number): Promise<PruneResult>;
  /** Waits for pending writes. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/*
 * What a shared (PostgreSQL) store keeps for the login layer and the use cases. The auth and
 * service layers declare the same shapes on their side (SessionTokenStore, UsedTokenStore,
 * SharedLocks); the composition root hands one to the other.
 */

/** A session, stored under the hex SHA-256 of its token (never the token). */
export interface SessionRecord {
  user: string;
  /** ms since the epoch. */
  expiresAt: number;
  idpGroups?: string[];
}

export interface SessionRecordStore {
  put(hash: string, rec: SessionRecord): Promise<void>;
  get(hash: string, nowMs: number): Promise<SessionRecord | undefined>;
  delete(hash: string): Promise<void>;
  revokeUser(user: string): Promise<void>;
}

/** Single-use keys (challenge nonces, ID-token hashes): true the first time only, atomically. */
export interface UsedOnceStore {
  markUsed(key: string, expiresAtMs: number): Promise<boolean>;
}

/** What GET /healthz reports of the store. */
export type StoreHealth = { ok: true } | { ok: false; problem: string };

/** A lock per id that holds across every process sharing the store. */
export interface RowLocks {
  withLock<T>(id: string, fn: () => Promise<T>): Promise<T>;
}
