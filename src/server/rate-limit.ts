/**
 * Fixed one-minute windows per key (a client address group, a user name). Each limiter has a
 * name that its 429 message gives, so an operator can tell which limit a client hit and which
 * config field raises it.
 */
import { JitError } from '../errors.js';

const WINDOW_MS = 60_000;
/** Above this many keys, windows that ended are swept before a new one is added. */
const SWEEP_AT = 50_000;

export interface LimitSpec {
  /** what the message calls it, e.g. 'login attempts per client address' */
  what: string;
  /** the config field that sets it, e.g. 'rateLimit.auth.perMinute' */
  field: string;
  perMinute: number;
}

export class RateLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(private readonly spec: LimitSpec, private readonly now: () => number) {}

  /** Counts one event for `key`; throws rate_limited (with Retry-After) once the window is full. */
  hit(key: string): void {
    this.add(key);
    this.check(key);
  }

  /** Counts one event without refusing it (for events that already happened, like a failed login). */
  add(key: string): void {
    const t = this.now();
    const w = this.windows.get(key);
    if (w && t - w.start < WINDOW_MS) {
      w.count++;
      return;
    }
    if (this.windows.size >= SWEEP_AT) this.sweep(t);
    this.windows.set(key, { start: t, count: 1 });
  }

  /** Throws rate_limited when `key` went over the limit in the current window. */
  check(key: string): void {
    const t = this.now();
    const w = this.windows.get(key);
    if (!w || t - w.start >= WINDOW_MS || w.count <= this.spec.perMinute) return;
    const retryAfterSeconds = Math.max(1, Math.ceil((w.start + WINDOW_MS - t) / 1000));
    throw new JitError(
      'rate_limited',
      `too many ${this.spec.what} (limit ${this.spec.perMinute} per minute, ${this.spec.field}); try again in ${retryAfterSeconds}s`,
      { retryAfterSeconds, details: { limit: this.spec.field, retryAfter: retryAfterSeconds } },
    );
  }

  private sweep(t: number): void {
    for (const [k, w] of this.windows) if (t - w.start >= WINDOW_MS) this.windows.delete(k);
  }
}
