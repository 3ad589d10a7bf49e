/**
 * POST /v1/requests: validate the key, ask the policy, then deny, park for approval, or sign.
 * The certificate leaves only after its audit record is durable.
 */
import { JitError } from '../errors.js';
import { parsePublicKey, publicKeyLine, type ParsedKey } from '../ca/keys.js';
import { attachSignature, certificateBody, checkCertParams } from '../ca/cert.js';
import { decide, type AccessRequest, type Identity, type Decision } from '../policy/decide.js';
import type { RequestRecord } from '../store/types.js';
import { newRequestId, type ServiceDeps } from './deps.js';
import { limitExceeded, UserRateLimiter } from './user-limits.js';

export interface RequestInput {
  target: string;
  task: string;
  reason?: string;
  ticket?: string;
  ttl?: string | number;
  account?: string;
  publicKey: string;
}

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

export interface PendingView {
  id: string;
  status: 'pending';
  approvalsNeeded: number;
  approvers: string[];
  expiresAt: string;
}

export function keyIdFor(rec: Pick<RequestRecord, 'id' | 'user' | 'task' | 'ticket'>): string {
  return ['jit-ssh', rec.id, rec.user, rec.task, ...(rec.ticket ? [rec.ticket] : [])].join(':');
}

const iso = (sec: number) => new Date(sec * 1000).toISOString();

/** The view of a stored grant. `certificate` is absent for an auto-issued grant read back
 * later: it was handed out once, the CA keeps only a compact index (the audit has the text). */
export type GrantView = Omit<IssuedView, 'certificate'> & { certificate?: string };

/** The answer to the request that signed the certificate. */
export function issuedView(rec: RequestRecord): IssuedView {
  const certificate = rec.cert?.certificate;
  if (certificate === undefined) throw new JitError('internal', `request ${rec.id} has no certificate`);
  return { ...grantView(rec), certificate };
}

export function grantView(rec: RequestRecord): GrantView {
  if (!rec.cert) throw new JitError('internal', `request ${rec.id} has no certificate`);
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

export function pendingView(rec: RequestRecord): PendingView {
  const need = rec.approval?.count ?? 1;
  return {
    id: rec.id,
    status: 'pending',
    approvalsNeeded: Math.max(0, need - rec.approvals.length),
    approvers: rec.approval?.approvers ?? [],
    expiresAt: new Date(rec.expiresAt).toISOString(),
  };
}

export async function createRequest(
  deps: ServiceDeps,
  identity: Identity,
  input: RequestInput,
  sourceAddress: string | undefined,
): Promise<IssuedView | PendingView> {
  const { config } = deps;
  const key = parsePublicKey(input.publicKey, {
    minRsaBits: config.minRsaBits,
    caKeys: deps.ca.trusted().map((s) => s.publicKeyBlob),
  });
  await refuseRevokedKey(deps, key.fingerprint);
  perStore(rateLimiters, deps, () => new UserRateLimiter(config.limits.requestsPerMinute)).take(identity.user, deps.clock.now());
  // maxActive must hold under concurrency without serialising a user's requests (that would
  // defeat the audit's group commit). Each request notes how many others of the same user are
  // in flight *before* counting stored grants, then registers itself: of any two concurrent
  // requests at least one counts the other. Overlap may count one twice, which only errs
  // towards refusing.
  const inFlight = inFlightFor(deps);
  const others = inFlight.get(identity.user) ?? 0;
  inFlight.set(identity.user, others + 1);
  try {
    return await decideAndStore(deps, identity, input, sourceAddress, key, others);
  } finally {
    const left = (inFlight.get(identity.user) ?? 1) - 1;
    if (left > 0) inFlight.set(identity.user, left);
    else inFlight.delete(identity.user);
  }
}

/** A key an admin revoked stays refused until an admin lifts the revocation. */
async function refuseRevokedKey(deps: ServiceDeps, fingerprint: string): Promise<void> {
  if (await deps.state.keyRevocation(fingerprint)) {
    throw new JitError('forbidden', `public key ${fingerprint} is revoked; use another key, or ask an admin to lift the revocation`);
  }
}

/** limits.liveCertificates: the user's unexpired certificates (+ concurrent requests) stay below it. */
async function checkLiveCertificates(deps: ServiceDeps, user: string, nowMs: number, othersInFlight: number): Promise<void> {
  const max = deps.config.limits.liveCertificates;
  const nowSec = Math.floor(nowMs / 1000);
  if ((await deps.state.countActiveGrants(user, nowSec)) + othersInFlight < max) return;
  const live = await deps.state.listRequests({ user, status: 'issued' });
  const soonest = Math.min(...live.map((r) => r.cert?.validBefore ?? Infinity).filter((vb) => vb > nowSec));
  throw limitExceeded('limits.liveCertificates', `${user} already holds ${max} unexpired certificates; revoke some (jit-ssh done) or wait`, Number.isFinite(soonest) ? soonest - nowSec : 60);
}

/** limits.pendingRequests: the user's requests waiting for approval (+ concurrent requests) stay below it. */
async function checkPending(deps: ServiceDeps, user: string, nowMs: number, othersInFlight: number): Promise<void> {
  const max = deps.config.limits.pendingRequests;
  if ((await deps.state.countPending(user, nowMs)) + othersInFlight < max) return;
  const pending = await deps.state.listRequests({ user, status: 'pending' });
  const soonest = Math.min(...pending.map((r) => r.expiresAt).filter((t) => t > nowMs));
  throw limitExceeded('limits.pendingRequests', `${user} already has ${max} requests waiting for approval; cancel one or wait`, Number.isFinite(soonest) ? (soonest - nowMs) / 1000 : 60);
}

/** Unexpired grants + live pending requests (a pending one holds a slot, or approvals could exceed maxActive) + in-flight ones. */
export async function countLiveGrants(deps: ServiceDeps, user: string, nowMs: number, othersInFlight: number): Promise<number> {
  const pending = (await deps.state.listRequests({ user, status: 'pending' })).filter((r) => r.expiresAt > nowMs);
  return (await deps.state.countActiveGrants(user, Math.floor(nowMs / 1000))) + pending.length + othersInFlight;
}

/** Per-daemon (per-store) in-memory state of this module. */
function perStore<T>(map: WeakMap<object, T>, deps: ServiceDeps, make: () => T): T {
  let v = map.get(deps.state);
  if (v === undefined) map.set(deps.state, (v = make()));
  return v;
}
const inFlightByStore = new WeakMap<object, Map<string, number>>();
const rateLimiters = new WeakMap<object, UserRateLimiter>();
const inFlightFor = (deps: ServiceDeps) => perStore(inFlightByStore, deps, () => new Map<string, number>());

async function decideAndStore(
  deps: ServiceDeps,
  identity: Identity,
  input: RequestInput,
  sourceAddress: string | undefined,
  key: ParsedKey,
  othersInFlight: number,
): Promise<IssuedView | PendingView> {
  const { config, state, audit, clock, metrics } = deps;
  const nowMs = clock.now();
  const request: AccessRequest = {
    target: input.target,
    task: input.task,
    account: input.account,
    ttl: input.ttl,
    ticket: input.ticket,
    reason: input.reason,
    sourceAddress,
  };
  const policy = deps.policy();
  const activeGrants = policy.rules.some((r) => r.maxActive !== undefined)
    ? await countLiveGrants(deps, identity.user, nowMs, othersInFlight)
    : 0; // no rule limits grants: skip the count (it is per-user work on the hot path)
  const decision: Decision = decide(request, identity, policy, new Date(nowMs), {
    activeGrants,
    config: { maxTtl: config.maxTtl, backdate: config.backdate },
  });
  const id = newRequestId(deps.random);
  const base = { id, user: identity.user, target: input.target, task: input.task, ticket: input.ticket, rule: decision.rule };

  if (decision.decision === 'deny' || !decision.certDraft) {
    metrics.denied.inc();
    await audit.append({ type: 'deny', ...base, reasons: decision.reasons, sourceAddress });
    throw new JitError('policy_denied', decision.reasons[0]?.message ?? 'denied by policy', {
      details: { requestId: id, rule: decision.rule ?? null, reasons: decision.reasons },
    });
  }

  if (decision.decision === 'approval') await checkPending(deps, identity.user, nowMs, othersInFlight);
  else await checkLiveCertificates(deps, identity.user, nowMs, othersInFlight);

  const rec: RequestRecord = {
    ...base,
    account: decision.certDraft.account,
    reason: input.reason,
    status: 'pending',
    createdAt: nowMs,
    expiresAt: nowMs + config.pendingTtl * 1000,
    // Canonical `type base64`: the comment is free text (up to kilobytes) nobody needs.
    publicKey: publicKeyLine(key.blob),
    keyFingerprint: key.fingerprint,
    sourceAddress,
    draft: decision.certDraft,
    approval: decision.approval,
    webhook: decision.webhook,
    approvals: [],
  };

  if (decision.decision === 'approval') {
    await audit.append({
      type: 'request',
      ...base,
      status: 'pending',
      account: rec.account,
      approvers: rec.approval?.approvers,
      count: rec.approval?.count,
      reason: input.reason,
      keyFingerprint: key.fingerprint,
      sourceAddress,
    });
    await state.putRequest(rec);
    metrics.pending.inc();
    deps.notify.send('pending', rec);
    return pendingView(rec);
  }

  const issued = await signRequest(deps, rec, nowMs, key);
  return issuedView(issued);
}

/**
 * Signs the certificate of an allowed request with the window starting now (auto: at request;
 * approval: at the final approval), makes the audit record durable, then stores the grant.
 */
export async function signRequest(deps: ServiceDeps, rec: RequestRecord, nowMs: number, parsedKey?: ParsedKey): Promise<RequestRecord> {
  const { config, audit, state, metrics } = deps;
  const started = process.hrtime.bigint();
  deps.ca.refresh();
  const signer = deps.ca.active();
  const nowSec = Math.floor(nowMs / 1000);
  // Re-checked at signing (an approval may come after a CA rotation made it equal to a CA key).
  const key = parsedKey ?? parsePublicKey(rec.publicKey, { minRsaBits: config.minRsaBits, caKeys: deps.ca.trusted().map((s) => s.publicKeyBlob) });
  await refuseRevokedKey(deps, key.fingerprint); // revoked while the request waited for approval
  const serial = await deps.serials.next();
  const keyId = keyIdFor(rec);
  const validAfter = nowSec - (rec.draft.backdateSeconds ?? config.backdate);
  const validBefore = Math.min(nowSec + rec.draft.ttlSeconds, rec.draft.notAfter ?? Infinity);
  if (validBefore <= nowSec) {
    throw new JitError('conflict', `request ${rec.id}: the requester's login session ended before it could be signed (the rule caps certificates to it); request again`);
  }
  const params = {
    type: 'user' as const,
    publicKey: key.blob,
    serial,
    keyId,
    principals: rec.draft.principals,
    validAfter: BigInt(validAfter),
    validBefore: BigInt(validBefore),
    criticalOptions: rec.draft.criticalOptions,
    extensions: rec.draft.extensions,
    nonce: deps.random(32),
  };
  checkCertParams(params);
  // The CA key may sign elsewhere (token, agent): body here, signature awaited, then assembled.
  const body = certificateBody(params, signer.publicKeyBlob);
  const { line } = attachSignature(body, await signer.sign(body.body));

  await audit.append({
    type: 'issue',
    id: rec.id,
    user: rec.user,
    target: rec.target,
    task: rec.task,
    account: rec.account,
    ticket: rec.ticket,
    reason: rec.reason, // the access report's "why" for grants that never waited for approval
    rule: rec.rule,
    serial: serial.toString(),
    keyId,
    principals: rec.draft.principals,
    criticalOptions: rec.draft.criticalOptions,
    extensions: rec.draft.extensions,
    validAfter,
    validBefore,
    ca: signer.fingerprint,
    keyFingerprint: key.fingerprint,
    approvals: rec.approvals.map((a) => a.by),
    sourceAddress: rec.sourceAddress,
    publicKey: rec.publicKey,
    certificate: line,
  });

  const issued: RequestRecord = {
    ...rec,
    status: 'issued',
    cert: { serial: serial.toString(), keyId, validAfter, validBefore, caFingerprint: signer.fingerprint, certificate: line },
  };
  // An approved request already lives in the state file; an auto-issued one stays in memory,
  // its durable copy being the audit record just written (rebuilt from there on restart).
  if (rec.approvals.length > 0) await state.putRequest(issued);
  else state.recordIssued(issued);
  metrics.issued.inc();
  metrics.issueSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
  return issued;
}
