/** The CLI's one time format, and the "did you mean" matcher. */
import { describe, expect, it } from 'vitest';
import { localTime } from '../../src/cli/commands/client-args.js';
import type { AllowedTarget, AllowedTask } from '../../src/client/api.js';
import { closest, editDistance, unknownNameError } from '../../src/cli/commands/unknown-names.js';

describe('localTime', () => {
  const now = Date.parse('2026-03-02T12:00:00Z');
  it('ok/24-hour local time with the zone; the date only on another day', () => {
    const today = localTime('2026-03-02T15:04:05Z', now);
    expect(today).toMatch(/^\d{2}:\d{2}:\d{2} \S+$/);
    expect(today).not.toMatch(/AM|PM/);
    expect(localTime('2025-12-31T23:59:59Z', now)).toMatch(/^20\d{2}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \S+$/);
    // The process runs in one zone: the hour shown is that zone's.
    const d = new Date('2026-03-02T15:04:05Z');
    expect(today.slice(0, 2)).toBe(String(d.getHours()).padStart(2, '0'));
  });
  it('fail/not a time: shown as given, not "Invalid Date"', () => {
    expect(localTime('soon', now)).toBe('soon');
  });
});

describe('did you mean', () => {
  it('ok/edit distance counts swaps of neighbours as one', () => {
    expect(editDistance('prod-db', 'prod-bd')).toBe(1);
    expect(editDistance('check-log', 'check-logs')).toBe(1);
    expect(editDistance('vault', 'prod-web', 2)).toBeGreaterThan(2);
  });
  it('ok/closest names, nearest first, nothing for a name far from all', () => {
    expect(closest('prod-dv', ['prod-db', 'prod-web', 'vault'])).toEqual(['prod-db']);
    expect(closest('restart', ['restart-service', 'check-logs'])).toEqual(['restart-service']);
    expect(closest('zzz', ['prod-db', 'vault'])).toEqual([]);
  });
  it('ok/names on the requester\'s own list are not an input error', () => {
    const task: AllowedTask = { task: 'check-logs', accounts: ['readonly'], approval: 'auto', rule: 'r', requireReason: false, maxTtl: 60, defaultTtl: 60 };
    const allowed: AllowedTarget[] = [{ target: 'prod-db', hosts: ['db1'], tasks: [task] }];
    expect(unknownNameError(allowed, 'prod-db', 'check-logs')).toBeUndefined();
    expect(unknownNameError(allowed, 'prod-db', 'incident')?.message).toBe('task: incident is not a task you may request on prod-db (yours there: check-logs)');
  });
});
