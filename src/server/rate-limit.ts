/** Fixed-window counters per key (IP, user): enough to blunt password-spray style abuse of auth. */
import { JitError } from '../errors.js';

export class RateLimiter {
  private windows = new Map<string, { start: number; count: number }>();

  constructor(private readonly perMinute: number, private readonly now: () => number) {}

  hit(key: string): void {
    const t = this.now();
    const w = this.windows.get(key);
    if (!w || t - w.start >= 60_000) {
      if (this.windows.size > 50_000) this.sweep(t);
      this.windows.set(key, { start: t, count: 1 });
      return;
    }
    if (++w.count > this.perMinute) throw new JitError('rate_limited', 'too many attempts; wait a minute and try again');
  }

  private sweep(t: number): void {
    for (const [k, w] of this.windows) if (t - w.start >= 60_000) this.windows.delete(k);
  }
}
