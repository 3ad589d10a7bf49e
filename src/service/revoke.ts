/**
 * Ending access early: revoke a request's certificate (requester, an approver of its rule, or an
 * admin), all of a user's grants, or every grant of a public key. Each revocation is audited
 * durably before the answer and shows in the KRL at once.
 */
import { JitError } from '../errors.js';
import type { Identity } from '../policy/decide.js';
import type { RequestRecord } from '../store/types.js';
import { isAdmin, isApproverOf } from './approve.js';
import { nowSeconds, type ServiceDeps } from './deps.js';
import { withRequestLock } from './locks.js';

async function revokeOne(deps: ServiceDeps, by: string, rec: RequestRecord, reason: string | undefined): Promise<RequestRecord> {
  return withRequestLock(rec.id, async () => {
    const current = (await deps.state.getRequest(rec.id)) ?? rec;
    if (current.status === 'revoked') return current;
    if (current.status !== 'issued' && current.status !== 'pending') {
      throw new JitError('conflict', `request ${rec.id} is ${current.status}; nothing to revoke`);
    }
    const now = deps.clock.now();
    await deps.audit.append({
      type: 'revoke',
      id: current.id,
      user: current.user,
      by,
      reason,
      serial: current.cert?.serial,
      ca: current.cert?.caFingerprint,
    });
    if (current.cert) {
      await deps.state.addRevocation({
        serial: current.cert.serial,
        caFingerprint: current.cert.caFingerprint,
        validBefore: current.cert.validBefore,
        revokedAt: now,
        by,
        reason,
      });
    }
    const revoked: RequestRecord = { ...current, status: 'revoked', revokedAt: now, revokedBy: by };
    await deps.state.putRequest(revoked);
    deps.notify.send('revoked', revoked);
    return revoked;
  });
}

export async function revokeRequest(deps: ServiceDeps, identity: Identity, id: string, reason?: string): Promise<RequestRecord> {
  const rec = await deps.state.getRequest(id);
  const allowed = rec && (rec.user === identity.user || isApproverOf(identity, rec) || isAdmin(deps, identity));
  if (!rec || !allowed) throw new JitError('not_found', `no request ${id} that you may revoke`);
  return revokeOne(deps, identity.user, rec, reason);
}

export async function revokeBySerial(deps: ServiceDeps, identity: Identity, serial: string, reason?: string): Promise<RequestRecord> {
  const [rec] = await deps.state.listRequests({ serial });
  if (!rec) throw new JitError('not_found', `no live certificate with serial ${serial}`);
  return revokeRequest(deps, identity, rec.id, reason);
}

/** Admin: every live grant of a user (their session tokens end too). */
export async function revokeUser(deps: ServiceDeps, identity: Identity, user: string, reason?: string): Promise<RequestRecord[]> {
  if (!isAdmin(deps, identity)) throw new JitError('forbidden', 'revoking by user needs an admin group');
  const live = (await deps.state.listRequests({ user })).filter((r) => r.status === 'issued' || r.status === 'pending');
  const out: RequestRecord[] = [];
  for (const r of live) out.push(await revokeOne(deps, identity.user, r, reason ?? `all grants of ${user}`));
  return out;
}

/** Admin: every grant whose subject key has this fingerprint, and the key itself in the KRL. */
export async function revokeKey(
  deps: ServiceDeps,
  identity: Identity,
  fingerprint: string,
  reason?: string,
): Promise<RequestRecord[]> {
  if (!isAdmin(deps, identity)) throw new JitError('forbidden', 'revoking by key needs an admin group');
  const matching = await deps.state.listRequests({ keyFingerprint: fingerprint });
  const out: RequestRecord[] = [];
  for (const r of matching.filter((r) => r.status === 'issued' || r.status === 'pending')) {
    out.push(await revokeOne(deps, identity.user, r, reason ?? `key ${fingerprint}`));
  }
  const withKey = matching.find((r) => r.publicKey);
  if (withKey) {
    const latest = Math.max(nowSeconds(deps.clock) + deps.config.maxTtl, ...matching.map((r) => r.cert?.validBefore ?? 0));
    await deps.audit.append({ type: 'revoke', by: identity.user, keyFingerprint: fingerprint, reason });
    await deps.state.addKeyRevocation({ fingerprint, publicKey: withKey.publicKey, until: latest, revokedAt: deps.clock.now(), by: identity.user });
  } else if (out.length === 0) {
    throw new JitError('not_found', `no grant with key ${fingerprint}`);
  }
  return out;
}
