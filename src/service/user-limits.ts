/**
 * Per-user bounds (config `limits`), so that one user — or one stolen session — cannot make the
 * CA hold or write without limit: request rate, live certificates, pending requests. Each
 * refusal is 429 rate_limited naming the limit, with the seconds until a retry can succeed
 * (retryAfterSeconds, which the server sends as Retry-After; also in details for clients).
 */
import { JitError } from '../errors.js';
import type { DaemonConfig } from '../policy/config-schema.js';

export type UserLimits = DaemonConfig['limits'];

export function limitExceeded(limit: string, message: string, retryAfterSec: number): JitError {
  const retryAfter = Math.max(1, Math.ceil(retryAfterSec));
  return new JitError('rate_limited', `${message} (limit ${limit}); retry in ${retryAfter} s`, { retryAfterSeconds: retryAfter, details: { limit, retryAfter } });
}

/**
 * Token bucket per user: `perMinute` requests in a burst, refilled at perMinute/60 per second.
 * Memory: one small entry per user seen in the last minute (full buckets are swept).
 */
export class UserRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly perMinute: number) {}

  /** Takes one request's token or throws rate_limited. nowMs: ms since the epoch. */
  take(user: string, nowMs: number): void {
    const rate = this.perMinute / 60_000; // tokens per ms
    const b = this.buckets.get(user) ?? { tokens: this.perMinute, at: nowMs };
    b.tokens = Math.min(this.perMinute, b.tokens + Math.max(0, nowMs - b.at) * rate);
    b.at = nowMs;
    if (b.tokens < 1) {
      this.buckets.set(user, b);
      throw limitExceeded('limits.requestsPerMinute', `too many requests from ${user}: at most ${this.perMinute} a minute`, (1 - b.tokens) / rate / 1000);
    }
    b.tokens -= 1;
    this.buckets.set(user, b);
    if (this.buckets.size > 10_000) this.sweep(nowMs);
  }

  private sweep(nowMs: number): void {
    const full = 60_000;
    for (const [u, b] of this.buckets) if (nowMs - b.at >= full) this.buckets.delete(u);
  }
}
