/** Asserts that fn throws a JitError with this code and a message matching the pattern. */
import { expect } from 'vitest';
import { JitError } from '../../src/errors.js';

export function expectJitError(fn: () => unknown, code: string, message: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(JitError);
    expect((e as JitError).code).toBe(code);
    expect((e as JitError).message).toMatch(message);
    return;
  }
  throw new Error(`expected ${code} matching ${message}`);
}
