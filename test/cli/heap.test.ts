import { describe, expect, it } from 'vitest';
import { limitHeapGrowth } from '../../src/cli/heap.js';

describe('daemon heap growth', () => {
  it('ok/an operator’s own --heap-growing-percent (node flag or NODE_OPTIONS) is left alone', () => {
    expect(limitHeapGrowth(['--heap-growing-percent=30'], '')).toBe(false);
    expect(limitHeapGrowth([], '--max-old-space-size=512 --heap-growing-percent=30')).toBe(false);
  });
  it('ok/otherwise the daemon sets it', () => {
    expect(limitHeapGrowth(['--enable-source-maps'], '--max-old-space-size=512')).toBe(true);
  });
});
