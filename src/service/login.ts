/**
 * SSH-key login: a signed challenge becomes a short-lived bearer token. Audited either way; a
 * refusal says nothing about why to the caller (the log does), and counts against the user's
 * failure budget only after the signature was checked, so a valid signature is accepted even
 * when someone else spent that budget.
 */
import { loginWithSignature, unauthenticated } from '../auth/authenticate.js';
import type { Challenges } from '../auth/challenges.js';
import type { SessionTokens } from '../auth/tokens.js';
import { loginWithIdToken, OidcRefusal, type OidcVerifier } from '../auth/oidc.js';
import type { UsedTokenStore } from '../auth/oidc-replay.js';
import type { ServiceDeps } from './deps.js';

export type LoginDeps = Pick<ServiceDeps, 'policy' | 'audit' | 'metrics' | 'log'> & { challenges: Challenges; tokens: SessionTokens };

/** Failed logins per user: `add` counts one, `check` throws rate_limited once over budget. */
export interface FailureBudget {
  add(user: string): void;
  check(user: string): void;
}

export interface LoginAttempt {
  user: string;
  challenge: string;
  signature: string;
  sourceAddress?: string;
}

export async function loginWithSshKey(deps: LoginDeps, attempt: LoginAttempt, failures: FailureBudget): Promise<{ token: string; expiresAt: number }> {
  const { sourceAddress } = attempt;
  const result = loginWithSignature(deps.policy(), deps.challenges, attempt);
  if (result.ok) {
    const issued = deps.tokens.issue(result.user);
    await deps.audit.append({ type: 'auth', user: result.user, method: 'ssh-key', keyFingerprint: result.keyFingerprint, sourceAddress });
    return issued;
  }
  deps.metrics.authFailures.inc();
  deps.log.info({ user: attempt.user, sourceAddress, why: result.why }, 'login refused');
  await deps.audit.append({ type: 'auth_failure', user: attempt.user, method: 'ssh-key', sourceAddress }).catch(() => undefined);
  failures.add(attempt.user);
  failures.check(attempt.user);
  throw unauthenticated();
}

export interface OidcLogin {
  verifier: OidcVerifier;
  used: UsedTokenStore;
}

/** The session token and who the IdP says the user is (POST /v1/auth/oidc). */
export interface OidcSession {
  token: string;
  expiresAt: number;
  user: string;
  groups: string[];
}

/**
 * SSO login: an ID token from the configured IdP becomes a session token. `readIdToken` parses
 * the caller's body; an OidcRefusal from it or from verification is answered 401 like any
 * other bad token (the reason goes to the log and audit only).
 */
export async function loginWithOidc(deps: LoginDeps, sso: OidcLogin, readIdToken: () => string, sourceAddress: string | undefined): Promise<OidcSession> {
  const issuer = sso.verifier.config.issuer;
  try {
    const login = await loginWithIdToken(sso.verifier, sso.used, deps.policy(), readIdToken());
    // The record is durable before the session exists.
    await deps.audit.append({ type: 'auth', method: 'oidc', user: login.user, issuer: login.issuer, subject: login.subject, groups: login.groups, sourceAddress });
    const { token, expiresAt } = deps.tokens.issue(login.user, { idpGroups: login.idpGroups });
    return { token, expiresAt, user: login.user, groups: login.groups };
  } catch (e) {
    if (!(e instanceof OidcRefusal)) throw e;
    deps.metrics.authFailures.inc();
    deps.log.warn({ method: 'oidc', issuer, subject: e.subject, reason: e.reason, sourceAddress }, 'OIDC login refused');
    await deps.audit
      .append({ type: 'auth_failure', method: 'oidc', issuer, ...(e.subject ? { subject: e.subject } : {}), reason: e.reason, sourceAddress })
      .catch(() => undefined);
    throw unauthenticated();
  }
}
