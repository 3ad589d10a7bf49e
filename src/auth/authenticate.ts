/**
 * Turns credentials into an Identity {user, groups, expiresAt}. One message for every failure,
 * so callers cannot tell an unknown user from a bad signature.
 */
import { JitError } from '../errors.js';
import { fingerprintOf, parsePublicKey } from '../ca/keys.js';
import { verifySshSig } from '../ca/sshsig.js';
import type { Identity } from '../policy/decide.js';
import type { Policy } from '../policy/schema.js';
import type { Challenges } from './challenges.js';
import { matchStaticToken, type SessionTokens } from './tokens.js';

export const SSHSIG_NAMESPACE = 'jit-ssh';
const FAILED = 'authentication failed';

export function unauthenticated(message = FAILED): JitError {
  return new JitError('unauthenticated', message);
}

function groupsOf(policy: Policy, user: string): string[] | undefined {
  const u = policy.users[user];
  if (!u || u.disabled) return undefined;
  return [...u.groups];
}

export type LoginResult = { ok: true; user: string; keyFingerprint: string } | { ok: false; why: string };

/**
 * Verifies an SSHSIG over a live challenge of this server by one of the user's registered keys.
 * `why` is for the log only: the client always hears the same 'authentication failed'.
 */
export async function loginWithSignature(
  policy: Policy,
  challenges: Challenges,
  body: { user: string; challenge: string; signature: string },
): Promise<LoginResult> {
  // Consume first: a challenge is single-use even when the signature turns out bad.
  const live = await challenges.consume(body.user, body.challenge);
  if (!live.ok) return live;
  const u = policy.users[body.user];
  if (!u || u.disabled) return { ok: false, why: 'unknown or disabled user' };
  const allowed = u.keys.flatMap((line) => {
    try {
      return [parsePublicKey(line, { minRsaBits: 2048 }).blob];
    } catch {
      return [];
    }
  });
  if (allowed.length === 0) return { ok: false, why: 'user has no usable key' };
  try {
    const { publicKey } = verifySshSig(body.signature, Buffer.from(body.challenge, 'utf8'), {
      namespace: SSHSIG_NAMESPACE,
      allowedKeys: allowed,
    });
    return { ok: true, user: body.user, keyFingerprint: fingerprintOf(publicKey) };
  } catch {
    return { ok: false, why: 'signature does not verify with a registered key' };
  }
}

/** Resolves `Authorization: Bearer …` to an identity, with groups read from the current policy. */
export async function identityFromBearer(header: string | undefined, policy: Policy, tokens: SessionTokens, now: number): Promise<Identity> {
  const m = /^Bearer ([!-~]{1,512})$/.exec(header ?? '');
  if (!m) throw unauthenticated('missing or malformed Authorization: Bearer token');
  const token = m[1];
  const session = await tokens.resolve(token);
  if (session) {
    const groups = groupsOf(policy, session.user);
    if (!groups) throw unauthenticated();
    return { user: session.user, groups, expiresAt: session.expiresAt, via: 'ssh-key' };
  }
  const st = matchStaticToken(token, policy.tokens ?? [], now);
  if (st) {
    const groups = groupsOf(policy, st.user);
    if (!groups) throw unauthenticated();
    return { user: st.user, groups, expiresAt: st.expires, via: 'token' };
  }
  throw unauthenticated();
}
