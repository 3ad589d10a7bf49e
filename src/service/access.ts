/**
 * Who may see, decide and end which request, and who may read the audit: every such rule of the
 * API (and of the web pages) is here, so that one answer holds everywhere.
 *
 * - see a request: its requester, an approver of its rule, an admin, an auditor;
 * - approve or deny it: an approver of its rule who is not its requester;
 * - revoke it: its requester, an approver of its rule, an admin;
 * - revoke by user or key, lift a key revocation: an admin;
 * - read the audit feed: an auditor.
 * A request one may not see is answered like one that does not exist (not_found), so ids of
 * other people's requests cannot be probed.
 */
import { JitError } from '../errors.js';
import type { DaemonConfig } from '../policy/config-schema.js';
import type { Identity } from '../policy/decide.js';
import type { RequestRecord } from '../store/types.js';

/** The part of the configuration these rules read. */
export interface AccessConfig {
  config: Pick<DaemonConfig, 'adminGroups' | 'auditorGroups'>;
}

const inAny = (identity: Identity, groups: readonly string[]) => groups.some((g) => identity.groups.includes(g));

export function isApproverOf(identity: Identity, rec: Pick<RequestRecord, 'approval'>): boolean {
  return inAny(identity, rec.approval?.approvers ?? []);
}

export function isAdmin(deps: AccessConfig, identity: Identity): boolean {
  return inAny(identity, deps.config.adminGroups);
}

export function isAuditor(deps: AccessConfig, identity: Identity): boolean {
  return inAny(identity, deps.config.auditorGroups);
}

export function maySee(deps: AccessConfig, identity: Identity, rec: RequestRecord): boolean {
  return rec.user === identity.user || isApproverOf(identity, rec) || isAdmin(deps, identity) || isAuditor(deps, identity);
}

export function mayRevoke(deps: AccessConfig, identity: Identity, rec: RequestRecord): boolean {
  return rec.user === identity.user || isApproverOf(identity, rec) || isAdmin(deps, identity);
}

/** Throws unless `identity` may approve or deny `rec`. */
export function assertMayDecide(identity: Identity, rec: RequestRecord): void {
  if (!isApproverOf(identity, rec)) {
    throw new JitError('forbidden', `only members of ${rec.approval?.approvers.join(', ') || 'an approver group'} may decide request ${rec.id}`);
  }
  if (rec.user === identity.user) throw new JitError('forbidden', 'you cannot approve or deny your own request');
}

/** Throws unless `identity` is an admin; `what` names the action for the message. */
export function assertAdmin(deps: AccessConfig, identity: Identity, what: string): void {
  if (!isAdmin(deps, identity)) throw new JitError('forbidden', `${what} needs an admin group`);
}

export function assertAuditor(deps: AccessConfig, identity: Identity): void {
  if (!isAuditor(deps, identity)) {
    throw new JitError('forbidden', `the audit feed needs one of the groups ${deps.config.auditorGroups.join(', ')}`);
  }
}
