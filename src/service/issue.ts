/**
 * POST /v1/requests: validate the key, ask the policy, then deny, park for approval, or sign.
 * The certificate leaves only after its audit record is durable.
 */
import { JitError } from '../errors.js';
import { parsePublicKey, type ParsedKey } from '../ca/keys.js';
import { checkCertParams, encodeCertificate } from '../ca/cert.js';
import { decide, type AccessRequest, type Identity, type Decision } from '../policy/decide.js';
import type { RequestRecord } from '../store/types.js';
import { newRequestId, nowSeconds, type ServiceDeps } from './deps.js';

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

export function issuedView(rec: RequestRecord): IssuedView {
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

/** Unexpired grants + live pending requests (a pending one holds a slot, or approvals could exceed maxActive) + in-flight ones. */
export async function countLiveGrants(deps: ServiceDeps, user: string, nowMs: number, othersInFlight: number): Promise<number> {
  const pending = (await deps.state.listRequests({ user, status: 'pending' })).filter((r) => r.expiresAt > nowMs);
  return (await deps.state.countActiveGrants(user, Math.floor(nowMs / 1000))) + pending.length + othersInFlight;
}

const inFlightByStore = new WeakMap<object, Map<string, number>>();
function inFlightFor(deps: ServiceDeps): Map<string, number> {
  let m = inFlightByStore.get(deps.state);
  if (!m) inFlightByStore.set(deps.state, (m = new Map()));
  return m;
}

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

  const rec: RequestRecord = {
    ...base,
    account: decision.certDraft.account,
    reason: input.reason,
    status: 'pending',
    createdAt: nowMs,
    expiresAt: nowMs + config.pendingTtl * 1000,
    publicKey: input.publicKey.trim(),
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
  const { line } = encodeCertificate(params, signer);

  await audit.append({
    type: 'issue',
    id: rec.id,
    user: rec.user,
    target: rec.target,
    task: rec.task,
    account: rec.account,
    ticket: rec.ticket,
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
