/**
 * "Each ID token is used once": the hashes of ID tokens already exchanged, kept until the token
 * expires. An interface because several replicas must share it (a database-backed store then
 * implements the same two methods); the in-memory one serves a single daemon.
 */
import { JitError } from '../errors.js';

export interface UsedTokenStore {
  /**
   * Records `hash` as used until `expiresAtMs`. Resolves true the first time, false when it was
   * already there (a replay). Must be atomic: two concurrent calls with one hash → one true.
   */
  markUsed(hash: string, expiresAtMs: number): Promise<boolean>;
}

export class MemoryUsedTokens implements UsedTokenStore {
  private readonly used = new Map<string, number>();

  constructor(private readonly deps: { now: () => number; maxEntries?: number }) {}

  async markUsed(hash: string, expiresAtMs: number): Promise<boolean> {
    const now = this.deps.now();
    const until = this.used.get(hash);
    if (until !== undefined && until > now) return false;
    if (this.used.size >= (this.deps.maxEntries ?? 100_000)) this.prune(now);
    // Only verified tokens get here, so filling this takes that many real logins; still bounded.
    if (this.used.size >= (this.deps.maxEntries ?? 100_000)) {
      throw new JitError('rate_limited', 'too many SSO logins in flight; try again shortly');
    }
    this.used.set(hash, expiresAtMs);
    return true;
  }

  get size(): number {
    return this.used.size;
  }

  prune(now = this.deps.now()): void {
    for (const [h, until] of this.used) if (until <= now) this.used.delete(h);
  }
}
