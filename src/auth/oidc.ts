/**
 * Verifies OpenID Connect ID tokens for `POST /v1/auth/oidc`. Discovery (openid-client) finds the
 * issuer's jwks_uri; jose fetches and caches the key set (refetching on an unknown `kid`, at most
 * once per cooldown) and checks signature, alg, iss, aud, exp, nbf and iat age. No JWT code of
 * our own. Discovery runs in the background: an unreachable IdP never stops the daemon, it only
 * makes SSO answer 503 `idp_unavailable` until it is back.
 */
import { createHash } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Logger } from 'pino';
import { JitError } from '../errors.js';
import { issuerProblem, type OidcConfig } from '../policy/config-schema.js';
import type { Policy } from '../policy/schema.js';
import { mapClaims, withPolicyGroups } from './oidc-identity.js';
import type { UsedTokenStore } from './oidc-replay.js';

/** Real ID tokens are 1–4 KiB; anything far larger is refused before any parsing. */
export const MAX_ID_TOKEN_LENGTH = 16 * 1024;
const IDP_DOWN = 'the identity provider cannot be reached; SSO logins are unavailable, SSH-key logins still work';
/** Clock skew allowed between us and the IdP for exp, nbf and iat. */
const CLOCK_TOLERANCE_S = 30;

/** Why a login was refused: for the log and the audit, never for the caller. */
export class OidcRefusal extends Error {
  constructor(
    readonly reason: string,
    readonly subject?: string,
  ) {
    super(reason);
    this.name = 'OidcRefusal';
  }
}

export interface OidcVerifierDeps {
  now: () => number;
  log: Pick<Logger, 'info' | 'warn'>;
  /** Minimum time between two JWKS fetches triggered by unknown `kid`s (jose's cooldown). */
  jwksCooldownMs?: number;
  /** Longest wait between background discovery attempts. */
  maxRetryMs?: number;
}

type KeySet = ReturnType<typeof createRemoteJWKSet>;

export interface VerifiedIdToken {
  issuer: string;
  subject: string;
  claims: JWTPayload;
  /** ms since the epoch */
  expiresAt: number;
  /** Identifies this exact token for the single-use check (see replayKey). */
  replayKey: string;
}

export class OidcVerifier {
  private keys?: KeySet;
  private discovering?: Promise<void>;
  private lastAttempt = 0;
  private retryMs = 1000;
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    readonly config: OidcConfig,
    private readonly deps: OidcVerifierDeps,
  ) {}

  get ready(): boolean {
    return this.keys !== undefined;
  }

  /** First discovery attempt now, then retries with backoff until one succeeds. */
  start(): void {
    void this.discover();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Verifies signature and claims; throws OidcRefusal (→ 401) or JitError idp_unavailable (→ 503). */
  async verify(idToken: string): Promise<VerifiedIdToken> {
    if (idToken.length > MAX_ID_TOKEN_LENGTH) throw new OidcRefusal(`token of ${idToken.length} characters (limit ${MAX_ID_TOKEN_LENGTH})`);
    const keys = await this.keySet();
    const c = this.config;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(idToken, keys, {
        issuer: c.issuer,
        audience: c.clientId,
        algorithms: c.allowedAlgs,
        maxTokenAge: c.maxTokenAge,
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: new Date(this.deps.now()),
        requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat'],
      }));
    } catch (e) {
      // The IdP's key endpoint not answering is an outage (503), not a bad token (401).
      if (e instanceof joseErrors.JWKSTimeout || !(e instanceof joseErrors.JOSEError)) {
        this.deps.log.warn({ issuer: c.issuer, error: (e as Error)?.message }, 'OIDC key set could not be fetched');
        throw new JitError('idp_unavailable', IDP_DOWN);
      }
      throw new OidcRefusal(joseReason(e), unverifiedSubject(idToken));
    }
    const subject = payload.sub!;
    // OIDC Core 3.1.3.7: with several audiences the token must say it was issued to us.
    const several = Array.isArray(payload.aud) && payload.aud.length > 1;
    if ((several || payload.azp !== undefined) && payload.azp !== c.clientId) {
      throw new OidcRefusal(several ? 'several audiences and azp is not our client id' : 'azp is not our client id', subject);
    }
    return { issuer: c.issuer, subject, claims: payload, expiresAt: payload.exp! * 1000, replayKey: replayKey(idToken) };
  }

  private async keySet(): Promise<KeySet> {
    if (this.keys) return this.keys;
    // A login while the IdP was away: try again now rather than wait for the next retry.
    if (this.deps.now() - this.lastAttempt >= 1000 || this.discovering) await this.discover();
    if (this.keys) return this.keys;
    throw new JitError('idp_unavailable', IDP_DOWN);
  }

  private discover(): Promise<void> {
    this.discovering ??= this.discoverOnce().finally(() => (this.discovering = undefined));
    return this.discovering;
  }

  private async discoverOnce(): Promise<void> {
    if (this.keys || this.closed) return;
    this.lastAttempt = this.deps.now();
    try {
      const jwksUri = await discoverJwksUri(this.config);
      this.keys = createRemoteJWKSet(jwksUri, { cooldownDuration: this.deps.jwksCooldownMs ?? 5000, timeoutDuration: 5000 });
      if (this.timer) clearTimeout(this.timer);
      this.deps.log.info({ issuer: this.config.issuer, jwksUri: jwksUri.href }, 'OIDC issuer discovered');
    } catch (e) {
      this.deps.log.warn({ issuer: this.config.issuer, error: (e as Error).message, retryInMs: this.retryMs }, 'OIDC discovery failed; SSO logins answer 503 until it succeeds');
      if (this.timer) clearTimeout(this.timer);
      if (!this.closed) {
        this.timer = setTimeout(() => void this.discover(), this.retryMs);
        this.timer.unref();
        this.retryMs = Math.min(this.retryMs * 2, this.deps.maxRetryMs ?? 30_000);
      }
    }
  }
}

/** The issuer's jwks_uri, from a discovery document whose `issuer` matches ours exactly. */
async function discoverJwksUri(cfg: OidcConfig): Promise<URL> {
  const client = await import('openid-client');
  const issuer = new URL(cfg.issuer);
  const conf = await client.discovery(issuer, cfg.clientId, undefined, undefined, {
    timeout: 5,
    ...(issuer.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {}),
  });
  const jwks = conf.serverMetadata().jwks_uri;
  if (!jwks) throw new Error('discovery document has no jwks_uri');
  // The keys must come over a channel as trustworthy as the issuer's own.
  const problem = issuerProblem(jwks);
  if (problem) throw new Error(`jwks_uri ${jwks} ${problem}`);
  return new URL(jwks);
}

/**
 * The single-use key: SHA-256 of the signed part (header.payload). Changing any byte of it breaks
 * the signature, while the signature itself may have other valid encodings (ECDSA's s ↔ n−s),
 * so hashing the whole token would let a re-encoded replay through.
 */
export function replayKey(idToken: string): string {
  const signed = idToken.slice(0, idToken.lastIndexOf('.'));
  return createHash('sha256').update(signed, 'utf8').digest('hex');
}

function unverifiedSubject(idToken: string): string | undefined {
  try {
    const sub = decodeJwt(idToken).sub;
    return typeof sub === 'string' ? sub.slice(0, 255) : undefined;
  } catch {
    return undefined;
  }
}

function joseReason(e: unknown): string {
  if (e instanceof joseErrors.JWTClaimValidationFailed) return `claim ${e.claim}: ${e.message}`;
  if (e instanceof joseErrors.JWTExpired) return `expired: ${e.message}`;
  if (e instanceof joseErrors.JOSEError) return `${e.code}: ${e.message}`;
  return (e as Error)?.message ?? String(e);
}

export interface OidcLogin {
  user: string;
  /** IdP groups ∪ policy groups */
  groups: string[];
  idpGroups: string[];
  issuer: string;
  subject: string;
}

/**
 * The whole exchange short of issuing the session: verify, map claims to a user and groups,
 * refuse disabled policy users, then spend the token (last, so a refused token is not spent
 * and a replayed one is refused whatever else holds).
 */
export async function loginWithIdToken(
  verifier: OidcVerifier,
  used: UsedTokenStore,
  policy: Policy,
  idToken: string,
): Promise<OidcLogin> {
  const t = await verifier.verify(idToken);
  const mapped = mapClaims(t.claims as Record<string, unknown>, verifier.config);
  if (!mapped.ok) throw new OidcRefusal(mapped.reason, t.subject);
  const policyUser = policy.users[mapped.user];
  if (policyUser?.disabled) throw new OidcRefusal(`user ${mapped.user} is disabled in the policy`, t.subject);
  if (!(await used.markUsed(t.replayKey, t.expiresAt + CLOCK_TOLERANCE_S * 1000))) throw new OidcRefusal('token already used (replay)', t.subject);
  return { user: mapped.user, groups: withPolicyGroups(mapped.groups, policyUser?.groups), idpGroups: mapped.groups, issuer: t.issuer, subject: t.subject };
}
