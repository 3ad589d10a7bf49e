/**
 * Bearer → Identity for sessions opened by SSO. Their groups are the IdP's (kept with the
 * session at login) ∪ what the current policy gives the user, so a policy reload still applies;
 * a user the policy disables loses the session at once. Other bearers go to identityFromBearer.
 */
import type { Identity } from '../policy/decide.js';
import type { Policy } from '../policy/schema.js';
import { identityFromBearer, unauthenticated } from './authenticate.js';
import { withPolicyGroups } from './oidc-identity.js';
import type { SessionTokens } from './tokens.js';

export async function identityFromAnyBearer(header: string | undefined, policy: Policy, tokens: SessionTokens, now: number): Promise<Identity> {
  const token = header?.startsWith('Bearer ') ? header.slice('Bearer '.length) : undefined;
  const session = token ? await tokens.resolve(token) : undefined;
  if (!session?.idpGroups) return identityFromBearer(header, policy, tokens, now);
  const u = policy.users[session.user];
  if (u?.disabled) throw unauthenticated();
  return { user: session.user, groups: withPolicyGroups(session.idpGroups, u?.groups), expiresAt: session.expiresAt, via: 'oidc' };
}
