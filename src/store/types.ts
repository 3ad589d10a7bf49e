/**
 * What the rest of jit-ssh sees of persistence. Two stores with different jobs:
 *  - AuditLog: the record. Append-only JSONL, hash-chained, durable before append() resolves.
 *  - StateStore: a cache of *live* state (pending requests, unexpired grants and revocations,
 *    bearer-token hashes). Small and bounded by prune(); everything in it also went to the audit.
 * Times in state are Unix seconds (numbers); audit records carry an ISO `time`.
 */

export type AuditEventType =
  | 'request'
  | 'decision'
  | 'issue'
  | 'deny'
  | 'approve'
  | 'reject'
  | 'revoke'
  | 'auth_failure'
  | 'auth'
  | 'expire'
  | 'webhook_failure'
  | 'ca_rotate'
  | 'ca_retire'
  // Open for new event types without touching the store.
  | (string & {});

/** What callers append. Must be JSON data; bigint values are written as decimal strings. */
export interface AuditEvent {
  type: AuditEventType;
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

export type RequestStatus = 'pending' | 'issued' | 'denied' | 'expired' | 'revoked';

export interface Approval {
  by: string;
  /** Unix seconds. */
  at: number;
  comment?: string;
}

/** One access request and, once issued, the certificate it produced. */
export interface StoredRequest {
  /** Made by the caller (random); the store never invents ids. */
  id: string;
  user: string;
  target: string;
  task: string;
  account?: string;
  ticket?: string;
  reason?: string;
  status: RequestStatus;
  /** Unix seconds. */
  createdAt: number;
  /** Unix seconds: a pending request can no longer be approved after this. */
  expiresAt: number;
  /** Requested ttl in seconds, when the requester asked for one. */
  ttl?: number;
  approvals: Approval[];
  denial?: { by?: string; at: number; reason: string };
  /** Name of the policy rule that decided. */
  rule?: string;
  /** Snapshot of the policy decision (cert draft, approval requirement) taken at request time. */
  decision?: { [k: string]: unknown };
  /** The requester's public key, authorized_keys line. */
  publicKey: string;
  sourceAddress?: string;
  // Set when issued:
  /** Decimal string: certificate serials are 64-bit and do not fit a JSON number. */
  serial?: string;
  keyId?: string;
  principals?: string[];
  /** Unix seconds. */
  validAfter?: number;
  validBefore?: number;
  caFingerprint?: string;
  /** The certificate, as an `…-cert-v01@openssh.com AAAA…` line. */
  certificate?: string;
  /** Unix seconds. */
  issuedAt?: number;
  revokedAt?: number;
  revokedBy?: string;
}

export interface RequestFilter {
  user?: string;
  status?: RequestStatus | readonly RequestStatus[];
  target?: string;
  serial?: string;
}

/** A revoked certificate, kept until it would have expired anyway. */
export interface CertRevocation {
  serial: string;
  caFingerprint: string;
  /** Unix seconds: the certificate's own validBefore; pruned after this. */
  validBefore: number;
  revokedAt: number;
  by: string;
  reason?: string;
}

/** A revoked public key (every certificate for it is refused). */
export interface KeyRevocation {
  /** 'SHA256:…' */
  fingerprint: string;
  /** Base64 SSH wire blob of the public key, what the KRL lists. */
  keyBlob: string;
  /** Unix seconds: keep until every certificate that could carry this key has expired. */
  until: number;
  revokedAt: number;
  by: string;
  reason?: string;
}

/** A consistent view of what the KRL must list; `krlVersion` changes whenever this can. */
export interface RevocationSnapshot {
  krlVersion: number;
  certs: CertRevocation[];
  keys: KeyRevocation[];
}

/** Only the sha256 hash of a bearer token is ever stored. */
export interface TokenRecord {
  user: string;
  groups?: string[];
  /** Unix seconds. */
  expiresAt: number;
}

export interface PruneResult {
  /** Pending requests that passed expiresAt and are now 'expired': the caller audits them. */
  expired: StoredRequest[];
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
  /** Refuses (JitError 'conflict') an id that already exists. */
  putRequest(r: StoredRequest): Promise<void>;
  getRequest(id: string): Promise<StoredRequest | undefined>;
  /** Newest first. */
  listRequests(filter?: RequestFilter): Promise<StoredRequest[]>;
  /**
   * Atomic read-modify-write: `mutate` gets a copy; if it throws nothing changes and the error
   * propagates. JitError('not_found') when there is no such id. Returns the new value.
   */
  updateRequest(id: string, mutate: (r: StoredRequest) => void): Promise<StoredRequest>;
  /** Issued, not revoked, validBefore > nowSec. */
  countActiveGrants(user: string, nowSec: number): Promise<number>;

  /** Returns false (and changes nothing) if this serial of this CA is already revoked. */
  addRevocation(rev: CertRevocation): Promise<boolean>;
  /** Returns false if this key fingerprint is already revoked until at least `until`. */
  addRevokedKey(rev: KeyRevocation): Promise<boolean>;
  /** Unexpired revocations only. */
  listRevocations(nowSec: number): Promise<RevocationSnapshot>;
  krlVersion(): Promise<number>;

  putToken(hash: string, rec: TokenRecord): Promise<void>;
  /** undefined when unknown or expired at nowSec. */
  getToken(hash: string, nowSec: number): Promise<TokenRecord | undefined>;
  deleteToken(hash: string): Promise<void>;

  /** Expire stale pending requests, drop what no longer matters. See state.ts for the rules. */
  prune(nowSec: number): Promise<PruneResult>;
  /** Waits for pending writes. */
  flush(): Promise<void>;
  close(): Promise<void>;
}
