/**
 * Ending access early: revoke a request's certificate (requester, an approver of its rule, or an
 * admin), all of a user's grants, or every grant of a public key and the key itself. Each
 * revocation is audited durably before the answer and shows in the KRL at once.
 *
 * Many grants at once (a user's, a key's) are one batch: their audit records are appended
 * together (the audit's group commit makes that a few fsyncs), then one state write marks them
 * all and adds their KRL entries. Revoking 10,000 grants costs about what revoking ten does.
 */
import { isJitError, JitError } from '../errors.js';
import { parsePublicKey, publicKeyLine } from '../ca/keys.js';
import type { Identity } from '../policy/decide.js';
import type { RequestRecord } from '../store/types.js';
import { UNREVOKE_KEY } from '../store/replay.js';
import { assertAdmin, mayRevoke } from './access.js';
import type { ServiceDeps } from './deps.js';
import { isLive, revoke, type Live } from './request.js';

/** Audits then revokes `recs` (all live); returns the ones this call changed. */
async function revokeBatch(deps: ServiceDeps, by: string, recs: readonly Live[], reason: string | undefined): Promise<RequestRecord[]> {
  if (recs.length === 0) return [];
  const at = deps.clock.now();
  // The store applies the same transition to all of them in one write (revokeGrants).
  await Promise.all(recs.flatMap((r) => revoke(r, by, reason, at).events.map((e) => deps.audit.append(e))));
  const changed = await deps.state.revokeGrants(
    recs.map((r) => r.id),
    { at, by, reason },
  );
  for (const r of changed) deps.notify.send('revoked', r);
  return changed;
}

/** A request that moved on meanwhile (approved and denied, expired) is no failure of the batch. */
function unlessConflict(e: unknown): undefined {
  if (isJitError(e) && e.code === 'conflict') return undefined;
  throw e;
}

/** One request, under its lock (an approval of the same request may be running). */
async function revokeOne(deps: ServiceDeps, by: string, rec: RequestRecord, reason: string | undefined): Promise<RequestRecord> {
  return deps.runtime.locks.run(rec.id, async () => {
    const current = (await deps.state.getRequest(rec.id)) ?? rec;
    if (current.status === 'revoked') return current;
    if (!isLive(current)) throw new JitError('conflict', `request ${rec.id} is ${current.status}; nothing to revoke`);
    const [revoked] = await revokeBatch(deps, by, [current], reason);
    return revoked ?? ((await deps.state.getRequest(rec.id)) as RequestRecord);
  });
}

/**
 * Issued grants in one batch; pending requests one by one under their locks, concurrently
 * (few: each user has a small pending cap), so an approval cannot sign one just revoked.
 */
async function revokeAll(deps: ServiceDeps, by: string, recs: readonly RequestRecord[], reason: string): Promise<RequestRecord[]> {
  const live = recs.filter(isLive);
  const pending = live.filter((r) => r.status === 'pending');
  const [issued, fromPending] = await Promise.all([
    revokeBatch(deps, by, live.filter((r) => r.status === 'issued'), reason),
    Promise.all(pending.map((r) => revokeOne(deps, by, r, reason).catch(unlessConflict))),
  ]);
  return [...issued, ...fromPending.filter((r): r is RequestRecord => r?.status === 'revoked')];
}

export async function revokeRequest(deps: ServiceDeps, identity: Identity, id: string, reason?: string): Promise<RequestRecord> {
  const rec = await deps.state.getRequest(id);
  if (!rec || !mayRevoke(deps, identity, rec)) throw new JitError('not_found', `no request ${id} that you may revoke`);
  return revokeOne(deps, identity.user, rec, reason);
}

export async function revokeBySerial(deps: ServiceDeps, identity: Identity, serial: string, reason?: string): Promise<RequestRecord> {
  const [rec] = await deps.state.listRequests({ serial });
  if (!rec) throw new JitError('not_found', `no live certificate with serial ${serial}`);
  return revokeRequest(deps, identity, rec.id, reason);
}

/** Admin: every live grant of a user (their session tokens end too). */
export async function revokeUser(deps: ServiceDeps, identity: Identity, user: string, reason?: string): Promise<RequestRecord[]> {
  assertAdmin(deps, identity, 'revoking by user');
  return revokeAll(deps, identity.user, await deps.state.listRequests({ user }), reason ?? `all grants of ${user}`);
}

/**
 * Admin: every grant whose subject key has this fingerprint, and the key itself: it stays in the
 * KRL and the CA refuses to issue for it until an admin lifts the revocation (liftKeyRevocation).
 * A key the CA never saw may be revoked too (e.g. reported stolen before first use).
 */
export async function revokeKey(deps: ServiceDeps, identity: Identity, fingerprint: string, reason?: string): Promise<RequestRecord[]> {
  assertAdmin(deps, identity, 'revoking by key');
  const matching = await deps.state.listRequests({ keyFingerprint: fingerprint });
  const known = matching.find((r) => r.publicKey)?.publicKey;
  // Canonical `type base64` only: records from older versions may still carry the comment.
  const publicKey = known ? publicKeyLine(parsePublicKey(known, { minRsaBits: 1024 }).blob) : undefined;
  if (!(await deps.state.keyRevocation(fingerprint))) {
    await deps.audit.append({ type: 'revoke', by: identity.user, keyFingerprint: fingerprint, publicKey, reason });
    await deps.state.addKeyRevocation({ fingerprint, publicKey, revokedAt: deps.clock.now(), by: identity.user, reason });
  }
  return revokeAll(deps, identity.user, matching, reason ?? `key ${fingerprint}`);
}

/** Admin: the key may be certified again and leaves the KRL (its revoked certificates stay in it). */
export async function liftKeyRevocation(deps: ServiceDeps, identity: Identity, fingerprint: string, reason?: string): Promise<{ fingerprint: string }> {
  assertAdmin(deps, identity, 'lifting a key revocation');
  if (!(await deps.state.keyRevocation(fingerprint))) throw new JitError('not_found', `key ${fingerprint} is not revoked`);
  await deps.audit.append({ type: UNREVOKE_KEY, by: identity.user, keyFingerprint: fingerprint, reason });
  await deps.state.removeKeyRevocation(fingerprint);
  return { fingerprint };
}
