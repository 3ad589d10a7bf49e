/**
 * Turns credentials into an Identity {user, groups, expiresAt}. One message for every failure,
 * so callers cannot tell an unknown user from a bad signature.
 */
import { JitError } from '../errors.js';
import { fingerprintOf, parsePublicKey } from '../ca/keys.js';
import { verifySshSig } from '../ca/sshsig.js';
import type { Identity } from '../policy/decide.js';
import type { Policy } from '../policy/schema.js';
import type { ChallengeStore } from './challenges.js';
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

/** Verifies an SSHSIG over a live challenge by one of the user's registered keys. */
export function loginWithSignature(
  policy: Policy,
  challenges: ChallengeStore,
  body: { user: string; challenge: string; signature: string },
): { user: string; keyFingerprint: string } {
  // Consume first: a challenge is single-use even when the signature turns out bad.
  const live = challenges.consume(body.user, body.challenge);
  const u = policy.users[body.user];
  if (!live || !u || u.disabled) throw unauthenticated();
  const allowed = u.keys.flatMap((line) => {
    try {
      return [parsePublicKey(line, { minRsaBits: 2048 }).blob];
    } catch {
      return [];
    }
  });
  if (allowed.length === 0) throw unauthenticated();
  try {
    const { publicKey } = verifySshSig(body.signature, Buffer.from(body.challenge, 'utf8'), {
      namespace: SSHSIG_NAMESPACE,
      allowedKeys: allowed,
    });
    return { user: body.user, keyFingerprint: fingerprintOf(publicKey) };
  } catch {
    throw unauthenticated();
  }
}

/** Resolves `Authorization: Bearer …` to an identity, with groups read from the current policy. */
export function identityFromBearer(header: string | undefined, policy: Policy, tokens: SessionTokens, now: number): Identity {
  const m = /^Bearer ([!-~]{1,512})$/.exec(header ?? '');
  if (!m) throw unauthenticated('missing or malformed Authorization: Bearer token');
  const token = m[1];
  const session = tokens.resolve(token);
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
