/**
 * The in-memory form of an auto-issued grant: only what listing, counting, revoking and the
 * KRL need. No certificate text, key line or free text: one user issuing thousands of
 * certificates with 16 KiB key comments costs a few hundred bytes per live certificate, and
 * nothing once it expires (prune drops it). The audit `issue` record is the full copy.
 */
import type { AuditRecord, IssuedRequest, RequestRecord, RevokedRequest } from './types.js';

/** A certificate's key id as the issuer writes it: `jit-ssh:<request id>:<user>:<task>[:<ticket>]`. */
export function keyIdFor(rec: { id: string; user: string; task: string; ticket?: string }): string {
  return ['jit-ssh', rec.id, rec.user, rec.task, ...(rec.ticket ? [rec.ticket] : [])].join(':');
}

/**
 * Names repeat across grants (users, targets, tasks, accounts, rules; principal lists): each is
 * kept once, not once per live certificate. They come from the policy's vocabulary, so the table
 * stays small; past SHARED_MAX entries new names are simply not shared.
 */
const SHARED_MAX = 50_000;
const sharedNames = new Map<string, string>();
const sharedLists = new Map<string, readonly string[]>();

function shared(s: string): string;
function shared(s: string | undefined): string | undefined;
function shared(s: string | undefined): string | undefined {
  if (s === undefined) return s;
  const hit = sharedNames.get(s);
  if (hit !== undefined) return hit;
  if (sharedNames.size < SHARED_MAX) sharedNames.set(s, s);
  return s;
}

function sharedList(list: readonly string[]): readonly string[] {
  const key = list.join('\n');
  const hit = sharedLists.get(key);
  if (hit && hit.length === list.length) return hit;
  const own = Object.freeze(list.map((p) => shared(p)));
  if (sharedLists.size < SHARED_MAX) sharedLists.set(key, own);
  return own;
}

export interface CompactGrant {
  readonly id: string;
  readonly user: string;
  readonly target: string;
  readonly task: string;
  readonly account?: string;
  readonly ticket?: string;
  readonly rule?: string;
  readonly principals: readonly string[];
  /** ms since the epoch */
  readonly createdAt: number;
  readonly serial: string;
  /** Absent when it reads as keyIdFor(grant) (always, for grants this version issued). */
  readonly keyId?: string;
  readonly caFingerprint: string;
  /** Unix seconds */
  readonly validAfter: number;
  readonly validBefore: number;
  readonly keyFingerprint?: string;
  /** The deciding rule's notification settings (shared with the policy, not a copy per grant). */
  readonly webhook?: unknown;
  readonly status: 'issued' | 'revoked';
  readonly revokedAt?: number;
  readonly revokedBy?: string;
}

export function compactGrant(r: RequestRecord): CompactGrant | undefined {
  if (!r.cert || (r.status !== 'issued' && r.status !== 'revoked')) return undefined;
  return {
    id: r.id,
    user: shared(r.user),
    target: shared(r.target),
    task: shared(r.task),
    account: shared(r.account),
    ticket: r.ticket,
    rule: shared(r.rule),
    principals: sharedList(r.draft.principals),
    createdAt: r.createdAt,
    serial: r.cert.serial,
    keyId: r.cert.keyId === keyIdFor(r) ? undefined : r.cert.keyId,
    caFingerprint: r.cert.caFingerprint,
    validAfter: r.cert.validAfter,
    validBefore: r.cert.validBefore,
    keyFingerprint: r.keyFingerprint,
    webhook: r.webhook,
    status: r.status,
    revokedAt: r.revokedAt,
    revokedBy: r.revokedBy,
  };
}

/** A fresh RequestRecord (the caller may change it) with what the index kept. */
export function expandGrant(g: CompactGrant): IssuedRequest | RevokedRequest {
  const common = {
    id: g.id,
    user: g.user,
    target: g.target,
    task: g.task,
    account: g.account,
    ticket: g.ticket,
    rule: g.rule,
    createdAt: g.createdAt,
    expiresAt: g.createdAt,
    draft: {
      account: g.account ?? '',
      principals: [...g.principals],
      ttlSeconds: g.validBefore - g.validAfter,
      criticalOptions: {},
      extensions: {},
    },
    approvals: [],
    publicKey: '',
    keyFingerprint: g.keyFingerprint,
    webhook: g.webhook,
    cert: { serial: g.serial, keyId: g.keyId ?? keyIdFor(g), validAfter: g.validAfter, validBefore: g.validBefore, caFingerprint: g.caFingerprint },
  };
  if (g.status === 'issued') return { ...common, status: 'issued' };
  return { ...common, status: 'revoked', revokedAt: g.revokedAt ?? g.createdAt, revokedBy: g.revokedBy ?? '' };
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
const stringMap = (v: unknown): Record<string, string> =>
  v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).filter((e): e is [string, string] => typeof e[1] === 'string')) : {};

/**
 * The grant an `issue` audit record describes, rebuilt from the fields the issuer writes, each
 * type-checked (undefined for a record without the fields a certificate has). Both stores read
 * their grants back from the log with it.
 */
export function grantFromIssue(a: AuditRecord): IssuedRequest | undefined {
  const id = str(a.id);
  const serial = str(a.serial);
  const validAfter = num(a.validAfter);
  const validBefore = num(a.validBefore);
  const ca = str(a.ca);
  if (!id || !serial || validAfter === undefined || validBefore === undefined || !ca) return undefined;
  const createdAt = Date.parse(a.time);
  return {
    id,
    user: str(a.user) ?? '',
    target: str(a.target) ?? '',
    task: str(a.task) ?? '',
    ...(str(a.account) ? { account: str(a.account) } : {}),
    ...(str(a.ticket) ? { ticket: str(a.ticket) } : {}),
    ...(str(a.rule) ? { rule: str(a.rule) } : {}),
    ...(str(a.sourceAddress) ? { sourceAddress: str(a.sourceAddress) } : {}),
    status: 'issued',
    createdAt,
    expiresAt: createdAt,
    draft: {
      account: str(a.account) ?? '',
      principals: strings(a.principals),
      ttlSeconds: validBefore - validAfter,
      criticalOptions: stringMap(a.criticalOptions),
      extensions: stringMap(a.extensions),
    },
    approvals: strings(a.approvals).map((by) => ({ by, at: createdAt })),
    publicKey: str(a.publicKey) ?? '',
    keyFingerprint: str(a.keyFingerprint),
    cert: { serial, keyId: str(a.keyId) ?? '', validAfter, validBefore, caFingerprint: ca, ...(str(a.certificate) ? { certificate: str(a.certificate) } : {}) },
  };
}

/** The same grant in the index's compact form (the embedded store's replay and its commit feed). */
export function compactGrantFromIssue(a: AuditRecord): CompactGrant | undefined {
  const g = grantFromIssue(a);
  return g && compactGrant(g);
}
