/**
 * Single-use login challenges for the SSH-key authenticator. In memory on purpose: a challenge
 * lives ≤ 60 s, and losing them on restart only means the client asks again.
 */
import { JitError } from '../errors.js';

export interface ChallengeDeps {
  now: () => number; // ms epoch
  random: (bytes: number) => Buffer;
  ttlMs: number;
  maxOutstanding?: number;
}

interface Pending {
  user: string;
  expiresAt: number;
}

export class ChallengeStore {
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly deps: ChallengeDeps) {}

  issue(user: string): { challenge: string; expiresAt: number } {
    this.prune();
    if (this.pending.size >= (this.deps.maxOutstanding ?? 10_000)) {
      throw new JitError('rate_limited', 'too many outstanding challenges; try again shortly');
    }
    const expiresAt = this.deps.now() + this.deps.ttlMs;
    // The user name is part of the signed text, so a signature can never be replayed for another user.
    const challenge = `jit-ssh-auth:${user}:${this.deps.random(32).toString('base64url')}`;
    this.pending.set(challenge, { user, expiresAt });
    return { challenge, expiresAt };
  }

  /** True once for a live challenge issued to this user; the challenge is gone afterwards either way. */
  consume(user: string, challenge: string): boolean {
    const p = this.pending.get(challenge);
    if (!p) return false;
    this.pending.delete(challenge);
    return p.user === user && p.expiresAt > this.deps.now();
  }

  private prune(): void {
    const now = this.deps.now();
    for (const [c, p] of this.pending) if (p.expiresAt <= now) this.pending.delete(c);
  }
}
