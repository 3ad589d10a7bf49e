/**
 * Durations as people write them in policy and requests: '15m', '1h', '90s', '2h30m', '1d',
 * or a whole number of seconds (900 or '900'). Units appear at most once, largest first,
 * without spaces. Everything else is refused with a message that names the field.
 */
import { JitError, type ErrorCode } from '../errors.js';

export const MAX_DURATION_SECONDS = 30 * 86_400;

const UNIT_SECONDS = { d: 86_400, h: 3_600, m: 60, s: 1 } as const;
const DURATION_RE = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;
const HINT = 'a duration like 15m, 1h, 90s, 2h30m, 1d or a whole number of seconds';

export interface DurationOptions {
  /** 0 is meaningful for some fields (backdate); for a lifetime it is not. */
  allowZero?: boolean;
  /** Upper bound in seconds; defaults to 30 days. */
  maxSeconds?: number;
}

export type DurationResult = { ok: true; seconds: number } | { ok: false; error: string };

/** Parses without throwing; `error` is a message fragment such as 'must be at most 30d'. */
export function tryParseDuration(value: unknown, options: DurationOptions = {}): DurationResult {
  const raw = rawSeconds(value);
  if (!raw.ok) return raw;
  return checkRange(raw.seconds, options);
}

/** Parses or throws JitError(code) whose message starts with the field name. */
export function parseDuration(
  value: unknown,
  field: string,
  options: DurationOptions & { code?: ErrorCode } = {},
): number {
  const result = tryParseDuration(value, options);
  if (!result.ok) {
    throw new JitError(options.code ?? 'invalid_ttl', `${field}: ${result.error}`, {
      details: { field, value: describe(value) },
    });
  }
  return result.seconds;
}

/** 9000 → '2h30m', 90 → '1m30s', 86400 → '1d', 0 → '0s'. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return String(seconds);
  let rest = Math.max(0, Math.round(seconds));
  if (rest === 0) return '0s';
  let out = '';
  for (const [unit, size] of Object.entries(UNIT_SECONDS)) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out;
}

function rawSeconds(value: unknown): DurationResult {
  if (typeof value === 'number') return numberSeconds(value);
  if (typeof value !== 'string') return { ok: false, error: `must be ${HINT}` };
  return stringSeconds(value);
}

function numberSeconds(value: number): DurationResult {
  if (!Number.isFinite(value)) return { ok: false, error: 'must be a finite number of seconds' };
  if (value < 0) return { ok: false, error: 'must not be negative' };
  if (!Number.isInteger(value)) return { ok: false, error: 'must be a whole number of seconds' };
  return { ok: true, seconds: value };
}

function stringSeconds(text: string): DurationResult {
  if (text === '') return { ok: false, error: `must not be empty (use ${HINT})` };
  if (/\s/.test(text)) return { ok: false, error: `"${text}" must not contain spaces` };
  if (text.startsWith('-')) return { ok: false, error: `"${text}" must not be negative` };
  if (/^\d+$/.test(text)) return numberSeconds(Number(text));
  const m = DURATION_RE.exec(text);
  if (!m) return { ok: false, error: `"${text}" is not ${HINT} (units d, h, m, s, largest first)` };
  const [, d, h, min, s] = m;
  const seconds =
    Number(d ?? 0) * UNIT_SECONDS.d + Number(h ?? 0) * UNIT_SECONDS.h + Number(min ?? 0) * UNIT_SECONDS.m + Number(s ?? 0);
  return numberSeconds(seconds);
}

function checkRange(seconds: number, options: DurationOptions): DurationResult {
  const max = options.maxSeconds ?? MAX_DURATION_SECONDS;
  if (seconds === 0 && !options.allowZero) return { ok: false, error: 'must be greater than 0' };
  if (seconds > max) return { ok: false, error: `must be at most ${formatDuration(max)}` };
  return { ok: true, seconds };
}

function describe(value: unknown): string {
  return typeof value === 'string' ? value.slice(0, 64) : typeof value;
}
