/**
 * POST /v1/requests: validate the key, ask the policy, then deny, park for approval, or sign.
 * The certificate leaves only after its audit record is durable.
 */
import { JitError } from '../errors.js';
import { parsePublicKey, publicKeyLine, type ParsedKey } from '../ca/keys.js';
import { attachSignature, certificateBody, checkCertParams } from '../ca/cert.js';
import { decide, type AccessRequest, type Identity, type Decision, type Reason } from '../policy/decide.js';
import type { IssuedRequest, PendingRequest } from '../store/types.js';
import { certificateWindow, issue, newRequestId, refuse, request } from './request.js';
import { issuedView, pendingView, type IssuedView, type PendingView } from './views.js';
import type { ServiceDeps } from './deps.js';
import { limitExceeded } from './user-limits.js';
import { keyIdFor } from '../store/grant-index.js';

export interface RequestInput {
  target: string;
  task: string;
  reason?: string;
  ticket?: string;
  ttl?: string | number;
  account?: string;
  publicKey: string;
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
  deps.runtime.requestRate.take(identity.user, deps.clock.now());
  // maxActive must hold under concurrency without serialising a user's requests (that would
  // defeat the audit's group commit). Each request notes how many others of the same user are
  // in flight *before* counting stored grants, then registers itself: of any two concurrent
  // requests at least one counts the other. Overlap may count one twice, which only errs
  // towards refusing.
  const { inFlight } = deps.runtime;
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
  const asked: AccessRequest = {
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
  const decision: Decision = decide(asked, identity, policy, new Date(nowMs), {
    activeGrants,
    config: { maxTtl: config.maxTtl, backdate: config.backdate },
  });
  const facts = {
    id: newRequestId(deps.random),
    user: identity.user,
    target: input.target,
    task: input.task,
    ticket: input.ticket,
    reason: input.reason,
    // Canonical `type base64`: the comment is free text (up to kilobytes) nobody needs.
    publicKey: publicKeyLine(key.blob),
    keyFingerprint: key.fingerprint,
    sourceAddress,
    now: nowMs,
    pendingTtlSeconds: config.pendingTtl,
  };

  if (decision.decision === 'deny') {
    metrics.denied.inc();
    await audit.append(refuse(facts, decision));
    const reasons = reasonsForRequester(decision.reasons, identity.user, input.task, input.target);
    throw new JitError('policy_denied', reasons[0]?.message ?? 'denied by policy', {
      details: { requestId: facts.id, rule: decision.rule ?? null, reasons },
    });
  }

  if (decision.decision === 'approval') await checkPending(deps, identity.user, nowMs, othersInFlight);
  else await checkLiveCertificates(deps, identity.user, nowMs, othersInFlight);

  const { record, events } = request(facts, decision);
  if (decision.decision === 'approval') {
    for (const e of events) await audit.append(e);
    await state.putRequest(record);
    metrics.pending.inc();
    deps.notify.send('pending', record);
    return pendingView(record);
  }

  const issued = await signRequest(deps, record, nowMs, key);
  return issuedView(issued);
}

/**
 * Signs the certificate of an allowed request with the window starting now (auto: at request;
 * approval: at the final approval), makes the audit record durable, then stores the grant.
 */
export async function signRequest(deps: ServiceDeps, rec: PendingRequest, nowMs: number, parsedKey?: ParsedKey): Promise<IssuedRequest> {
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
  const { validAfter, validBefore } = certificateWindow(rec, nowSec, config.backdate);
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

  const cert = { serial: serial.toString(), keyId, validAfter, validBefore, caFingerprint: signer.fingerprint, certificate: line };
  const { record: issued, events } = issue({ ...rec, keyFingerprint: key.fingerprint }, cert);
  for (const e of events) await audit.append(e);
  // An approved request already lives in the state file; an auto-issued one stays in memory,
  // its durable copy being the audit record just written (rebuilt from there on restart).
  if (rec.approvals.length > 0) await state.putRequest(issued);
  else state.recordIssued(issued);
  metrics.issued.inc();
  metrics.issueSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
  return issued;
}

/** Steps whose refusal would tell a requester whether a target or task exists at all. */
const EXISTENCE_STEPS: ReadonlySet<string> = new Set(['targetExists', 'taskExists', 'ruleMatches']);

/**
 * What a refused requester is told. "Unknown target X" versus "no rule matches" would let anyone
 * with a login map the policy's targets and tasks, so both read the same; the audit record keeps
 * the precise reason for operators (and `jit-sshd policy check` explains it).
 */
export function reasonsForRequester(reasons: readonly Reason[], user: string, task: string, target: string): Reason[] {
  if (!reasons.some((r) => EXISTENCE_STEPS.has(r.step))) return [...reasons];
  return [{ step: 'ruleMatches', message: `no rule lets ${user} request task ${task} on target ${target}` }];
}
