/**
 * The login use cases: a signed challenge (SSH key) or an ID token from the configured IdP (SSO)
 * becomes a short-lived jit-ssh session token. Audited either way; a refusal says nothing about
 * why to the caller (the log and the audit do).
 */
import { JitError } from '../errors.js';
import { loginWithSignature, unauthenticated } from '../auth/authenticate.js';
import type { Challenges } from '../auth/challenges.js';
import { loginWithIdToken, OidcRefusal, type OidcVerifier } from '../auth/oidc.js';
import type { UsedTokenStore } from '../auth/oidc-replay.js';
import type { SessionTokens } from '../auth/tokens.js';
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

/**
 * SSH-key login. A refusal counts against the user's failure budget only after the signature
 * was checked, so a valid signature is accepted even when someone else spent that budget.
 */
export async function loginWithSshKey(deps: LoginDeps, attempt: LoginAttempt, failures: FailureBudget): Promise<{ token: string; expiresAt: number }> {
  const { sourceAddress } = attempt;
  const result = await loginWithSignature(deps.policy(), deps.challenges, attempt);
  if (result.ok) {
    const issued = await deps.tokens.issue(result.user);
    await deps.audit.append({ type: 'auth', user: result.user, method: 'sshsig', keyFingerprint: result.keyFingerprint, sourceAddress });
    return issued;
  }
  deps.metrics.authFailures.inc();
  deps.log.info({ user: attempt.user, sourceAddress, why: result.why }, 'login refused');
  await deps.audit.append({ type: 'auth_failure', user: attempt.user, method: 'sshsig', sourceAddress }).catch(() => undefined);
  failures.add(attempt.user);
  failures.check(attempt.user);
  throw unauthenticated();
}


/** The configured IdP: its verifier and the ID tokens already used (each logs in once). */
export interface SsoProvider {
  verifier: OidcVerifier;
  used: UsedTokenStore;
}

/** `oidc` absent: SSO is not configured. */
export type SsoDeps = Pick<ServiceDeps, 'policy' | 'audit' | 'metrics' | 'log'> & { tokens: SessionTokens; oidc?: SsoProvider };

export interface SsoSession {
  token: string;
  expiresAt: number;
  user: string;
  groups: string[];
}

/**
 * An ID token from the configured IdP → a jit-ssh session (the API's bearer token and the web
 * pages' cookie alike). The audit record is durable before the session exists.
 * `method` tells the audit how the token came: 'oidc' (CLI) or 'oidc-web' (the web sign-in).
 */
export async function openSsoSession(
  deps: SsoDeps,
  idToken: string,
  sourceAddress: string | undefined,
  method: 'oidc' | 'oidc-web',
  /** The verifier for the client the token was issued to (the web pages may have their own). */
  verifier?: OidcVerifier,
): Promise<SsoSession> {
  const sso = deps.oidc;
  if (!sso) throw new JitError('not_found', 'SSO is not configured on this server (no oidc: in jit-sshd.yaml)');
  try {
    const login = await loginWithIdToken(verifier ?? sso.verifier, sso.used, deps.policy(), idToken);
    await deps.audit.append({ type: 'auth', method, user: login.user, issuer: login.issuer, subject: login.subject, groups: login.groups, sourceAddress });
    const { token, expiresAt } = await deps.tokens.issue(login.user, { idpGroups: login.idpGroups });
    return { token, expiresAt, user: login.user, groups: login.groups };
  } catch (e) {
    if (e instanceof OidcRefusal) throw await refuseSsoLogin(deps, e, sourceAddress);
    throw e;
  }
}

/** Logs, counts and audits a refused SSO login; returns the one error every refusal gets. */
export async function refuseSsoLogin(deps: SsoDeps, e: OidcRefusal, sourceAddress: string | undefined): Promise<JitError> {
  const issuer = deps.oidc?.verifier.config.issuer;
  deps.metrics.authFailures.inc();
  deps.log.warn({ method: 'oidc', issuer, subject: e.subject, reason: e.reason, sourceAddress }, 'OIDC login refused');
  await deps.audit
    .append({ type: 'auth_failure', method: 'oidc', issuer, ...(e.subject ? { subject: e.subject } : {}), reason: e.reason, sourceAddress })
    .catch(() => undefined);
  return unauthenticated();
}
