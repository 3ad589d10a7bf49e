/**
 * Who may read GET /v1/host-config: it names every account of a target and, with a `{user}`
 * principal format, every user, so by default only a host credential opens it. Today that is
 * a configured host token (kept as its SHA-256, compared in constant time); host enrolment
 * tokens or host signatures plug in as further HostCredential checks.
 */
import type { HostToken } from '../policy/config-schema.js';
import { unauthenticated } from './authenticate.js';
import { matchStaticToken } from './tokens.js';

/** True when `bearer` lets a host read the config of `target`. */
export type HostCredential = (bearer: string, target: string, now: number) => boolean;

export function hostTokenCredential(tokens: readonly HostToken[]): HostCredential {
  return (bearer, target, now) => {
    const t = matchStaticToken(bearer, tokens, now);
    return t !== undefined && (t.targets === undefined || t.targets.includes(target));
  };
}

/**
 * An unused, unexpired host enrolment token opens its own target's config (without using the
 * token up), so `host-setup.sh --enroll-token` needs no second credential.
 */
export function enrolmentTokenCredential(peek: (token: string, nowSeconds: number) => { target: string } | undefined): HostCredential {
  return (bearer, target, now) => peek(bearer, Math.floor(now / 1000))?.target === target;
}

/**
 * Throws unauthenticated unless host config is public by choice or a credential accepts the
 * `Authorization: Bearer` header for this target. One message for a missing, wrong or
 * out-of-scope token, so the answer does not tell which targets exist.
 */
export function authorizeHostConfig(
  header: string | undefined,
  target: string,
  opts: { publicHostConfig: boolean; credentials: readonly HostCredential[]; now: number },
): void {
  if (opts.publicHostConfig) return;
  const m = /^Bearer ([!-~]{1,512})$/.exec(header ?? '');
  if (m && opts.credentials.some((accepts) => accepts(m[1], target, opts.now))) return;
  throw unauthenticated(
    'host config needs a host token: Authorization: Bearer <token> (host-setup.sh --host-token-file FILE); see hostTokens in jit-sshd.yaml',
  );
}
