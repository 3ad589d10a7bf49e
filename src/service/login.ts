/**
 * SSH-key login: a signed challenge becomes a short-lived bearer token. Audited either way; a
 * refusal says nothing about why to the caller (the log does), and counts against the user's
 * failure budget only after the signature was checked, so a valid signature is accepted even
 * when someone else spent that budget.
 */
import { loginWithSignature, unauthenticated } from '../auth/authenticate.js';
import type { Challenges } from '../auth/challenges.js';
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

