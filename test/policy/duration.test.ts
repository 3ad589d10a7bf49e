import { describe, expect, it } from 'vitest';
import { JitError } from '../../src/errors.js';
import { formatDuration, parseDuration, tryParseDuration } from '../../src/policy/duration.js';

describe('parseDuration', () => {
  const ok: Array<[string, unknown, number, object?]> = [
    ['ok/minutes', '15m', 900],
    ['ok/hours', '1h', 3600],
    ['ok/seconds', '90s', 90],
    ['ok/combined', '2h30m', 9000],
    ['ok/day', '1d', 86_400],
    ['ok/all units', '1d2h3m4s', 93_784],
    ['ok/number', 900, 900],
    ['ok/digit string', '900', 900],
    ['ok/30 days exactly', '30d', 2_592_000],
    ['ok/zero where allowed', '0s', 0, { allowZero: true }],
    ['ok/number zero where allowed', 0, 0, { allowZero: true }],
  ];
  for (const [name, input, seconds, options] of ok) {
    it(name, () => expect(parseDuration(input, 'ttl', options)).toBe(seconds));
  }

  const fail: Array<[string, unknown, RegExp, object?]> = [
    ['fail/negative string', '-5m', /negative/],
    ['fail/negative number', -5, /negative/],
    ['fail/zero', '0s', /greater than 0/],
    ['fail/zero number', 0, /greater than 0/],
    ['fail/non-finite', '1e309', /not a duration/],
    ['fail/infinity', Infinity, /finite/],
    ['fail/NaN', NaN, /finite/],
    ['fail/fraction', 1.5, /whole number/],
    ['fail/fraction string', '1.5h', /not a duration/],
    ['fail/space', '15 m', /spaces/],
    ['fail/leading space', ' 15m', /spaces/],
    ['fail/unknown unit', '15x', /not a duration/],
    ['fail/ms', '15ms', /not a duration/],
    ['fail/upper case', '15M', /not a duration/],
    ['fail/order', '30m2h', /not a duration/],
    ['fail/empty', '', /empty/],
    ['fail/too large', '31d', /at most 30d/],
    ['fail/too large seconds', 99_999_999, /at most 30d/],
    ['fail/huge digits', '9'.repeat(400), /finite/],
    ['fail/custom max', '2m', /at most 1m/, { maxSeconds: 60 }],
    ['fail/boolean', true, /must be a duration/],
    ['fail/object', { m: 15 }, /must be a duration/],
    ['fail/null', null, /must be a duration/],
  ];
  for (const [name, input, message, options] of fail) {
    it(name, () => {
      let err: unknown;
      try {
        parseDuration(input, 'tasks.incident.maxTtl', options);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(JitError);
      expect((err as JitError).code).toBe('invalid_ttl');
      expect((err as JitError).message).toMatch(/^tasks\.incident\.maxTtl: /);
      expect((err as JitError).message).toMatch(message);
    });
  }

  it('fail/custom error code', () => {
    expect(() => parseDuration('x', 'backdate', { code: 'invalid_config' })).toThrow(
      expect.objectContaining({ code: 'invalid_config' }),
    );
  });

  it('ok/tryParseDuration does not throw', () => {
    expect(tryParseDuration('bad')).toEqual({ ok: false, error: expect.stringContaining('not a duration') });
  });
});

describe('formatDuration', () => {
  const cases: Array<[number, string]> = [
    [0, '0s'],
    [90, '1m30s'],
    [900, '15m'],
    [3600, '1h'],
    [9000, '2h30m'],
    [86_400, '1d'],
    [93_784, '1d2h3m4s'],
  ];
  for (const [seconds, text] of cases) {
    it(`ok/${seconds}`, () => {
      expect(formatDuration(seconds)).toBe(text);
      if (seconds > 0) expect(parseDuration(text, 'x')).toBe(seconds);
    });
  }
});
