/**
 * The policy file (config/policy.yaml): types, structural validation (zod, strict: unknown
 * fields are errors) and cross-reference checks (rules name existing tasks, globs match
 * targets, …). Every problem is reported at once as `policy.yaml: rules[2].approval.count: …`.
 * Durations are seconds after validation; token expiry is ms since the epoch.
 */
import { z } from 'zod';
import { globMatches, globProblem } from './glob.js';
import { cidrProblem } from './ip.js';
import { checkWith, duration, name, parseYamlText, record, valueOrThrow, type Checked } from './problems.js';
import { KEY_TYPES } from '../ca/keys.js';
import { KNOWN_EXTENSIONS } from '../ca/cert.js';
import { freeTextProblem } from './text.js';
import { principalCollisions, type Collision } from './principals.js';

export type Weekday = 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun';
export const WEEKDAYS: readonly Weekday[] = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

export interface PolicyUser {
  groups: string[];
  /** authorized_keys lines, checked for shape only here; ca/keys.ts validates the key itself. */
  keys: string[];
  disabled: boolean;
}

export interface PolicyToken {
  name: string;
  user: string;
  /** hex SHA-256 of the bearer token, lower case */
  sha256: string;
  /** ms since the epoch */
  expires?: number;
}

export interface Target {
  hosts: string[];
  accounts: string[];
  /** placeholders {account} {target} {user}; must contain {account} and {target} */
  principalFormat: string;
  description?: string;
}

export interface Task {
  accounts: string[];
  maxTtl: number;
  defaultTtl?: number;
  forceCommand?: string;
  extensions: string[];
  /** regex source, used as written (anchor it yourself) */
  requireTicket?: string;
  requireReason: boolean;
  description?: string;
}

export interface ApproverSet {
  approvers: string[];
  count: number;
}

export type Approval = 'auto' | 'deny' | ApproverSet;

export interface Schedule {
  timezone: string;
  days: Weekday[];
  /** as written, 'HH:MM-HH:MM' */
  hours: string;
  /** minutes after local midnight; window is [from, to) */
  from: number;
  to: number;
  outside: 'deny' | 'approval';
  /** present exactly when outside = 'approval' */
  approvers?: string[];
  count?: number;
}

export interface Rule {
  name: string;
  description?: string;
  users?: string[];
  groups?: string[];
  targets: string[];
  tasks: string[];
  approval: Approval;
  bindSourceAddress: boolean;
  sourceAddresses?: string[];
  maxTtl?: number;
  schedule?: Schedule;
  maxActive?: number;
  webhook?: string;
  capTtlToIdentity: boolean;
}

export interface PolicyDefaults {
  ttl: number;
  maxTtl: number;
  /** When absent the daemon's config backdate applies. */
  backdate?: number;
}

export interface Policy {
  defaults: PolicyDefaults;
  users: Record<string, PolicyUser>;
  tokens: PolicyToken[];
  targets: Record<string, Target>;
  tasks: Record<string, Task>;
  rules: Rule[];
}

export const DEFAULT_PRINCIPAL_FORMAT = '{account}@{target}';
const PLACEHOLDERS = ['account', 'target', 'user'] as const;
const HOURS_RE = /^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$/;

// ---------- field schemas ----------

const names = () => z.array(name());

const keyLine = z.string().refine((line) => keyLineProblem(line) === null, {
  error: (iss) => keyLineProblem(String(iss.input)) ?? 'invalid key line',
});

/** Shape only: '<type> <base64 blob> [comment]' where the blob starts with the same type. */
export function keyLineProblem(line: string): string | null {
  const m = /^(\S+) ([A-Za-z0-9+/]+={0,2})(?: [^\r\n]*)?$/.exec(line.trim());
  if (!m) return 'must be an authorized_keys line: "<type> <base64> [comment]"';
  const [, type, b64] = m;
  if (!(KEY_TYPES as readonly string[]).includes(type)) return `key type ${type} is not accepted (use ${KEY_TYPES.join(', ')})`;
  const blob = Buffer.from(b64, 'base64');
  if (blob.toString('base64') !== b64) return 'key blob is not valid base64';
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (len < 0 || 4 + len > blob.length || blob.subarray(4, 4 + len).toString('latin1') !== type) {
    return `key blob does not start with its type ${type}`;
  }
  return null;
}

const sha256Hex = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits: the SHA-256 of the token')
  .transform((s) => s.toLowerCase());

const isoDate = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/, 'must be a date like 2025-12-31 or 2025-12-31T18:00:00Z')
  .transform((s, ctx) => {
    const ms = Date.parse(s);
    if (Number.isNaN(ms)) {
      ctx.addIssue({ code: 'custom', message: `"${s}" is not a valid date` });
      return z.NEVER;
    }
    return ms;
  });

const regexSource = z.string().min(1).refine((src) => compiles(src), {
  error: (iss) => `invalid regular expression: ${compileError(String(iss.input))}`,
});

const glob = z.string().refine((g) => globProblem(g) === null, { error: (iss) => globProblem(iss.input) ?? 'invalid glob' });

const cidr = z.string().refine((c) => cidrProblem(c) === null, { error: (iss) => cidrProblem(String(iss.input)) ?? 'invalid CIDR' });

const httpUrl = z.string().refine((u) => isHttpUrl(u), 'must be an http:// or https:// URL');

const extensionName = z
  .string()
  .refine((e) => (KNOWN_EXTENSIONS as readonly string[]).includes(e), {
    error: (iss) => `unknown extension "${String(iss.input)}" (known: ${KNOWN_EXTENSIONS.join(', ')})`,
  });

/** Shown to approvers and users: the free-text rule (no control or bidi characters). */
const description = z.string().refine((t) => freeTextProblem(t) === null, { error: (iss) => freeTextProblem(String(iss.input)) ?? 'invalid text' });

const FORCE_COMMAND_MAX = 4096;
// Reviewers read it in the policy file and the certificate: one line, no bidi tricks.
const forceCommand = z
  .string()
  .min(1)
  .refine((c) => freeTextProblem(c, FORCE_COMMAND_MAX) === null, {
    error: (iss) => freeTextProblem(String(iss.input), FORCE_COMMAND_MAX) ?? 'invalid command',
  });

const approverSet = {
  approvers: names().min(1),
  count: z.number().int().min(1).max(100),
};

const approval = z.union([z.literal('auto'), z.literal('deny'), z.strictObject(approverSet)], {
  error: 'must be auto, deny or {approvers: [group, …], count: N}',
});

const schedule = z
  .strictObject({
    timezone: z.string().refine(isTimeZone, { error: (iss) => `unknown time zone "${String(iss.input)}" (use an IANA name like Europe/Berlin)` }),
    days: z.array(z.enum(WEEKDAYS as [Weekday, ...Weekday[]])).min(1),
    hours: z.string().regex(HOURS_RE, 'must be HH:MM-HH:MM, e.g. 08:00-18:00'),
    outside: z.enum(['deny', 'approval']).default('deny'),
    approvers: approverSet.approvers.optional(),
    count: approverSet.count.optional(),
  })
  .transform((s) => {
    const [from, to] = s.hours.split('-').map(minutesOf);
    return { ...s, from, to };
  });

// ---------- top level ----------

const userSchema = z.strictObject({
  groups: names().default([]),
  keys: z.array(keyLine).default([]),
  disabled: z.boolean().default(false),
});

const tokenSchema = z.strictObject({
  name: name(),
  user: name(),
  sha256: sha256Hex,
  expires: isoDate.optional(),
});

const targetSchema = z.strictObject({
  hosts: z.array(z.string().regex(/^[A-Za-z0-9._:-]{1,253}$/, 'must be a host name or address')).min(1),
  accounts: names().min(1),
  principalFormat: z.string().default(DEFAULT_PRINCIPAL_FORMAT),
  description: description.optional(),
});

const taskSchema = z.strictObject({
  accounts: names().min(1),
  maxTtl: duration(),
  defaultTtl: duration().optional(),
  forceCommand: forceCommand.optional(),
  extensions: z.array(extensionName).default(['permit-pty']),
  requireTicket: regexSource.optional(),
  requireReason: z.boolean().default(false),
  description: description.optional(),
});

const ruleSchema = z.strictObject({
  name: name(),
  description: description.optional(),
  users: names().optional(),
  groups: names().optional(),
  targets: z.array(glob).min(1),
  tasks: z.array(z.union([z.literal('*'), name()], { error: 'must be a task name or "*"' })).min(1),
  approval: approval,
  bindSourceAddress: z.boolean().default(false),
  sourceAddresses: z.array(cidr).min(1).optional(),
  maxTtl: duration().optional(),
  schedule: schedule.optional(),
  maxActive: z.number().int().min(1).optional(),
  webhook: httpUrl.optional(),
  capTtlToIdentity: z.boolean().default(false),
});

const defaultsSchema = z.strictObject({
  ttl: duration().prefault('15m'),
  maxTtl: duration().prefault('1h'),
  backdate: duration({ allowZero: true, maxSeconds: 3600 }).optional(),
});

export const policySchema = z.strictObject({
  defaults: defaultsSchema.prefault({}),
  users: record(userSchema).prefault({}),
  tokens: z.array(tokenSchema).default([]),
  targets: record(targetSchema).prefault({}),
  tasks: record(taskSchema).prefault({}),
  rules: z.array(ruleSchema),
});

// ---------- cross-reference checks ----------

type Problem = [readonly PropertyKey[], string];

function crossCheck(p: Policy): Problem[] {
  return [
    ...checkDefaults(p),
    ...checkTokens(p),
    ...Object.entries(p.targets).flatMap(([n, t]) => checkTarget(n, t)),
    ...checkPrincipalCollisions(p),
    ...Object.entries(p.tasks).flatMap(([n, t]) => checkTask(p, n, t)),
    ...p.rules.flatMap((r, i) => checkRule(p, r, i)),
  ];
}

function checkDefaults(p: Policy): Problem[] {
  return p.defaults.ttl > p.defaults.maxTtl ? [[['defaults', 'ttl'], 'must not exceed defaults.maxTtl']] : [];
}

function checkTokens(p: Policy): Problem[] {
  const out: Problem[] = [];
  const seenNames = new Set<string>();
  const seenHashes = new Set<string>();
  p.tokens.forEach((t, i) => {
    if (!Object.hasOwn(p.users, t.user)) out.push([['tokens', i, 'user'], `unknown user "${t.user}"`]);
    if (seenNames.has(t.name)) out.push([['tokens', i, 'name'], `duplicate token name "${t.name}"`]);
    if (seenHashes.has(t.sha256)) out.push([['tokens', i, 'sha256'], 'same hash as an earlier token']);
    seenNames.add(t.name);
    seenHashes.add(t.sha256);
  });
  return out;
}

function checkTarget(targetName: string, t: Target): Problem[] {
  const problem = principalFormatProblem(t.principalFormat);
  return problem ? [[['targets', targetName, 'principalFormat'], problem]] : [];
}

const MAX_COLLISIONS_SHOWN = 10;

/** Two (target, account) pairs must never render the same principal (see principals.ts). */
function checkPrincipalCollisions(p: Policy): Problem[] {
  const valid = Object.fromEntries(Object.entries(p.targets).filter(([, t]) => principalFormatProblem(t.principalFormat) === null));
  const found = principalCollisions(valid);
  const shown: Problem[] = found.slice(0, MAX_COLLISIONS_SHOWN).map((c) => [['targets', c.b.target, 'principalFormat'], collisionMessage(p, c)]);
  if (found.length > shown.length) shown.push([['targets'], `${found.length - shown.length} more principal collisions not shown`]);
  return shown;
}

function collisionMessage(p: Policy, c: Collision): string {
  const pair = (x: { target: string; account: string }) => `target ${x.target} account ${x.account} ("${p.targets[x.target].principalFormat}")`;
  const example = c.viaUser ? `can render the same principal, e.g. "${c.principal}" for some user names,` : `both render the principal "${c.principal}"`;
  return `${pair(c.a)} and ${pair(c.b)} ${example} so a certificate for one would log in to the other; separate the parts with a character names cannot contain (@ + = :), as in "${DEFAULT_PRINCIPAL_FORMAT}"`;
}

/** Placeholders {account} {target} {user} only; {account} and {target} both required so a
 * certificate names one account on one target; literal text limited to safe characters. */
export function principalFormatProblem(format: string): string | null {
  const used = [...format.matchAll(/\{([^{}]*)\}/g)].map((m) => m[1]);
  const unknown = used.filter((u) => !(PLACEHOLDERS as readonly string[]).includes(u));
  if (unknown.length) return `unknown placeholder {${unknown[0]}} (use {account}, {target}, {user})`;
  const literal = format.replace(/\{(account|target|user)\}/g, '');
  if (/[{}]/.test(literal)) return 'unbalanced "{" or "}"';
  if (!/^[A-Za-z0-9._@+=:-]*$/.test(literal)) return 'may contain only letters, digits and . _ @ + = : - besides placeholders (no commas or spaces)';
  if (!used.includes('account') || !used.includes('target')) return 'must contain {account} and {target}';
  return null;
}

function checkTask(p: Policy, taskName: string, t: Task): Problem[] {
  const out: Problem[] = [];
  const known = new Set(Object.values(p.targets).flatMap((tg) => tg.accounts));
  t.accounts.forEach((a, i) => {
    if (!known.has(a)) out.push([['tasks', taskName, 'accounts', i], `"${a}" is not an account of any target`]);
  });
  if (t.defaultTtl !== undefined && t.defaultTtl > t.maxTtl) out.push([['tasks', taskName, 'defaultTtl'], 'must not exceed maxTtl']);
  return out;
}

function checkRule(p: Policy, r: Rule, i: number): Problem[] {
  const at = (...path: PropertyKey[]): PropertyKey[] => ['rules', i, ...path];
  const out: Problem[] = [];
  if (p.rules.findIndex((o) => o.name === r.name) < i) out.push([at('name'), `duplicate rule name "${r.name}"`]);
  if (r.users === undefined && r.groups === undefined) out.push([at(), 'must list users or groups (an empty list matches nobody)']);
  r.users?.forEach((u, j) => {
    if (!Object.hasOwn(p.users, u)) out.push([at('users', j), `unknown user "${u}"`]);
  });
  r.targets.forEach((g, j) => {
    if (!Object.keys(p.targets).some((t) => globMatches(g, t))) out.push([at('targets', j), `"${g}" matches no target`]);
  });
  r.tasks.forEach((t, j) => {
    if (t !== '*' && !Object.hasOwn(p.tasks, t)) out.push([at('tasks', j), `unknown task "${t}"`]);
  });
  if (out.length === 0 && !ruleGrantsSomething(p, r)) {
    out.push([at(), 'grants nothing: no target it matches shares an account with any of its tasks']);
  }
  if (r.schedule) out.push(...checkSchedule(r.schedule).map(([path, m]): Problem => [at('schedule', ...path), m]));
  return out;
}

function checkSchedule(s: Schedule): Problem[] {
  const out: Problem[] = [];
  if (s.from >= s.to) out.push([['hours'], 'start must be before end (split overnight windows into two rules)']);
  if (new Set(s.days).size !== s.days.length) out.push([['days'], 'lists a day twice']);
  const hasApprovers = s.approvers !== undefined || s.count !== undefined;
  if (s.outside === 'approval' && (s.approvers === undefined || s.count === undefined)) {
    out.push([[], 'outside: approval needs approvers and count']);
  }
  if (s.outside === 'deny' && hasApprovers) out.push([[], 'approvers and count only apply with outside: approval']);
  return out;
}

function ruleGrantsSomething(p: Policy, r: Rule): boolean {
  const tasks = r.tasks.includes('*') ? Object.values(p.tasks) : r.tasks.map((t) => p.tasks[t]);
  const targets = Object.entries(p.targets).filter(([n]) => r.targets.some((g) => globMatches(g, n)));
  return targets.some(([, tg]) => tasks.some((t) => t.accounts.some((a) => tg.accounts.includes(a))));
}

// ---------- helpers ----------

function compiles(src: string): boolean {
  return compileError(src) === null;
}

function compileError(src: string): string | null {
  try {
    new RegExp(src);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function isHttpUrl(u: string): boolean {
  try {
    const url = new URL(u);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h * 60 + m;
}

// ---------- entry points ----------

/** Every problem at once, or the policy. */
export function checkPolicy(raw: unknown, file = 'policy.yaml'): Checked<Policy> {
  return checkWith(policySchema, raw, file, crossCheck);
}

/** Throws JitError('invalid_config') listing every problem (details: string[]). */
export function validatePolicy(raw: unknown, file = 'policy.yaml'): Policy {
  return valueOrThrow(checkPolicy(raw, file), file);
}

/** YAML text → validated policy; YAML errors carry line and column. */
export function parsePolicyYaml(text: string, file = 'policy.yaml'): Policy {
  return validatePolicy(parseYamlText(text, file), file);
}

