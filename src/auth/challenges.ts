/**
 * Login challenges that cost the server nothing until they are used: each challenge carries its
 * own server binding, user, expiry and nonce under an HMAC (challenge-text.ts), so issuing one
 * stores nothing. Only USED challenges are remembered (nonce → expiry) until they expire, which
 * makes each single-use; that memory is bounded by the rate of token attempts, not of requests
 * for challenges. Any replica holding the same secret can check a challenge another issued.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { challengeBody, parseChallenge } from './challenge-text.js';
import { MemoryUsedTokens, type UsedTokenStore } from './oidc-replay.js';

export interface ServerBinding {
  /** canonical public URL of this daemon */
  server: string;
  /** fingerprint of the active user-CA key */
  ca: string;
}

export interface ChallengeDeps {
  now: () => number; // ms epoch
  random: (bytes: number) => Buffer;
  ttlMs: number;
  /** the HMAC key (see secret.ts); the same for every replica */
  secret: Buffer;
  /** read at each use: the public URL is known after listen, the CA key may rotate */
  binding: () => ServerBinding;
  /** Where used nonces are kept (default: this process's memory; with PostgreSQL, the database). */
  used?: UsedTokenStore;
}

export type ChallengeVerdict = { ok: true } | { ok: false; why: string };

export class Challenges {
  /** Nonces of challenges already presented, until they expire. */
  private readonly used: UsedTokenStore;

  constructor(private readonly deps: ChallengeDeps) {
    this.used = deps.used ?? new MemoryUsedTokens({ now: deps.now });
  }

  issue(user: string): { challenge: string; expiresAt: number } {
    const expiresAt = this.deps.now() + this.deps.ttlMs;
    const body = challengeBody({
      ...this.deps.binding(),
      user,
      exp: Math.floor(expiresAt / 1000),
      nonce: this.deps.random(18).toString('base64url'),
    });
    return { challenge: `${body} mac=${this.mac(body)}`, expiresAt: Math.floor(expiresAt / 1000) * 1000 };
  }

  /**
   * Checks a presented challenge and uses it up: afterwards it is refused, whatever the verdict
   * on the signature. Only a challenge this server made (valid mac) is remembered.
   */
  async consume(user: string, challenge: string): Promise<ChallengeVerdict> {
    const c = parseChallenge(challenge);
    if (!c) return { ok: false, why: 'not a challenge of this version' };
    const want = Buffer.from(this.mac(c.signed));
    const got = Buffer.from(c.mac);
    if (want.length !== got.length || !timingSafeEqual(want, got)) return { ok: false, why: 'challenge not issued by this CA (bad mac)' };
    const expMs = c.exp * 1000;
    if (expMs <= this.deps.now()) return { ok: false, why: 'challenge expired' };
    if (!(await this.used.markUsed(c.nonce, expMs))) return { ok: false, why: 'challenge already used' };
    const b = this.deps.binding();
    if (c.server !== b.server) return { ok: false, why: `challenge bound to another server (${c.server})` };
    if (c.ca !== b.ca) return { ok: false, why: 'challenge bound to another CA key' };
    if (c.user !== user) return { ok: false, why: 'challenge issued for another user' };
    return { ok: true };
  }

  /** How many used challenges are remembered (for tests and metrics). */
  get remembered(): number {
    if (this.used instanceof MemoryUsedTokens) {
      this.used.prune();
      return this.used.size;
    }
    return 0;
  }

  private mac(body: string): string {
    return createHmac('sha256', this.deps.secret).update(body, 'utf8').digest('base64url');
  }
}
