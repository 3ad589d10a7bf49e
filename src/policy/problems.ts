/**
 * Shared pieces of config and policy validation: zod field helpers, turning zod issues into
 * `file: path: problem` lines, and YAML parsing that reports `file:line:col: problem`.
 * Pure: text in, data or problems out.
 */
import { z } from 'zod';
import YAML from 'yaml';
import { JitError } from '../errors.js';
import { tryParseDuration, type DurationOptions } from './duration.js';

import { NAME_RE } from './names.js';
export { NAME_RE };
export const NAME_HINT = 'must be 1–63 letters, digits, ".", "_" or "-", starting with a letter or digit';

export const name = () => z.string().regex(NAME_RE, NAME_HINT);

/** A duration field; the parsed value is seconds. Use `.optional()` or `.prefault('15m')`. */
export const duration = (options: DurationOptions = {}) =>
  z.unknown().transform((value, ctx): number => {
    if (value === undefined) {
      ctx.addIssue({ code: 'custom', message: 'required' });
      return z.NEVER;
    }
    const result = tryParseDuration(value, options);
    if (!result.ok) {
      ctx.addIssue({ code: 'custom', message: result.error });
      return z.NEVER;
    }
    return result.seconds;
  });

/** Records as null-prototype objects, so `record['constructor']` is undefined, not Object. */
export const record = <V extends z.ZodType>(value: V) =>
  z.record(name(), value).transform((r) => Object.assign(Object.create(null) as Record<string, z.output<V>>, r));

/** Friendlier default messages than zod's, used for every parse. */
const errorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined ? 'required' : `must be ${article(issue.expected)}`;
    case 'too_small':
      return tooSmall(issue.origin, Number(issue.minimum));
    case 'too_big':
      return issue.origin === 'array' ? `must have at most ${issue.maximum} items` : `must be ≤ ${issue.maximum}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map(String).join(', ')}`;
    default:
      return undefined;
  }
};

function article(expected: string): string {
  const words: Record<string, string> = {
    object: 'a mapping',
    record: 'a mapping',
    array: 'a list',
    string: 'a string',
    number: 'a number',
    int: 'a whole number',
    boolean: 'true or false',
  };
  return words[expected] ?? expected;
}

function tooSmall(origin: string, minimum: number): string {
  if (origin === 'array') return minimum === 1 ? 'must not be empty' : `must have at least ${minimum} items`;
  if (origin === 'string') return 'must not be empty';
  return `must be ≥ ${minimum}`;
}

/** rules[2].approval.count; odd keys are quoted: targets["prod db"]. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z0-9_*.-]+$/.test(String(seg)) && !String(seg).includes('.')) out += (out ? '.' : '') + String(seg);
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

export function problemLine(file: string, path: readonly PropertyKey[], message: string): string {
  const where = formatPath(path);
  return where ? `${file}: ${where}: ${message}` : `${file}: ${message}`;
}

function issueLines(file: string, issue: z.core.$ZodIssue): string[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => problemLine(file, [...issue.path, key], 'unknown field'));
  }
  if (issue.code === 'invalid_key') {
    const inner = issue.issues[0]?.message ?? issue.message;
    return [problemLine(file, issue.path, `invalid name: ${inner}`)];
  }
  return [problemLine(file, issue.path, issue.message)];
}

export type Checked<T> = { ok: true; value: T; problems: [] } | { ok: false; problems: string[] };

/** Structural validation with zod, then (only when that passed) cross-reference checks. */
export function checkWith<S extends z.ZodType>(
  schema: S,
  raw: unknown,
  file: string,
  crossCheck: (value: z.output<S>) => Array<[readonly PropertyKey[], string]>,
): Checked<z.output<S>> {
  const parsed = schema.safeParse(raw, { error: errorMap });
  if (!parsed.success) return { ok: false, problems: parsed.error.issues.flatMap((i) => issueLines(file, i)) };
  const problems = crossCheck(parsed.data).map(([path, message]) => problemLine(file, path, message));
  return problems.length ? { ok: false, problems } : { ok: true, value: parsed.data, problems: [] };
}

export function invalidConfig(file: string, problems: string[]): JitError {
  const message = problems.length === 1 ? problems[0] : `${file}: ${problems.length} problems:\n  ${problems.join('\n  ')}`;
  return new JitError('invalid_config', message, { details: problems });
}

export function valueOrThrow<T>(checked: Checked<T>, file: string): T {
  if (!checked.ok) throw invalidConfig(file, checked.problems);
  return checked.value;
}

/** YAML text → plain data; duplicate keys and syntax errors become `file:line:col: problem`. */
export function parseYamlText(text: string, file: string): unknown {
  if (typeof text !== 'string') throw invalidConfig(file, [`${file}: not text`]);
  const doc = YAML.parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw invalidConfig(file, doc.errors.map((e) => yamlProblem(file, e)));
  }
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw invalidConfig(file, [`${file}: ${(e as Error).message}`]);
  }
}

function yamlProblem(file: string, error: YAML.YAMLError): string {
  const first = error.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
  const pos = error.linePos?.[0];
  return pos ? `${file}:${pos.line}:${pos.col}: ${first}` : `${file}: ${first}`;
}
