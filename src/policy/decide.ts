/**
 * (request, identity, policy, now) → decision + certificate draft. Pure: time comes in as
 * `now`, counts of active grants in `ctx`.
 *
 * Two kinds of "no":
 * - a request that is malformed (ttl syntax, ticket syntax, names that cannot be names) throws
 *   JitError('invalid_ttl' | 'invalid_field') → 400; nothing about the policy is revealed.
 * - everything the policy refuses — including unknown targets, tasks and accounts, so that
 *   "does not exist" and "not for you" look the same to a requester — is decision 'deny' with
 *   reasons {step, message}; the caller audits it and answers 403 policy_denied.
 *
 * Each step is a small named function returning an Outcome; `steps` records every step that
 * ran, and every rule's match result, for `jit-sshd policy check` and the audit log.
 */
import { JitError } from '../errors.js';
import { formatDuration, parseDuration } from './duration.js';
import { globMatches } from './glob.js';
import { cidrContains, formatCidr, formatIp, parseCidr, parseIp } from './ip.js';
import { NAME_HINT, NAME_RE } from './problems.js';
import { freeTextProblem } from './text.js';
import type { ApproverSet, Policy, PolicyDefaults, Rule, Schedule, Target, Task, Weekday } from './schema.js';

export interface AccessRequest {
  target: string;
  task: string;
  account?: string;
  ttl?: string | number;
  ticket?: string;
  reason?: string;
  /** the requester's address as the server saw it (after trusted proxies) */
  sourceAddress?: string;
}

export interface Identity {
  user: string;
  groups: string[];
  /** ms since the epoch; end of the authenticated session or token */
  expiresAt?: number;
  via: 'ssh-key' | 'token' | 'oidc';
}

export type StepName =
  | 'userActive'
  | 'targetExists'
  | 'taskExists'
  | 'accountAllowed'
  | 'ticketValid'
  | 'reasonGiven'
  | 'ruleMatches'
  | 'approval'
  | 'resolveTtl'
  | 'capTtlToIdentity'
  | 'scheduleAllows'
  | 'maxActive'
  | 'sourceAddress'
  | 'principals';

export interface Step {
  step: StepName;
  ok: boolean;
  why: string;
  /** set on ruleMatches steps: which rule */
  rule?: string;
}

export interface Reason {
  step: StepName;
  message: string;
}

export interface CertDraft {
  user: string;
  target: string;
  task: string;
  account: string;
  ticket?: string;
  /** never empty */
  principals: string[];
  ttlSeconds: number;
  /** policy defaults.backdate, else the server's */
  backdateSeconds: number;
  /**
   * capTtlToIdentity: the certificate must end by then (Unix seconds) even if its window starts
   * later, at approval.
   */
  notAfter?: number;
  criticalOptions: Record<string, string>;
  extensions: Record<string, string>;
}

interface DecisionBase {
  /** deny: why; approval: why approval is needed; auto: empty */
  reasons: Reason[];
  steps: Step[];
}

/** The rule signs at once. */
export interface AutoDecision extends DecisionBase {
  decision: 'auto';
  /** the rule that decided */
  rule: string;
  certDraft: CertDraft;
  webhook?: string;
  approval?: undefined;
}

/** The rule allows it once `approval` says yes. */
export interface NeedsApprovalDecision extends DecisionBase {
  decision: 'approval';
  rule: string;
  certDraft: CertDraft;
  approval: ApproverSet;
  webhook?: string;
}

/** Refused: `reasons` say why; no certificate. */
export interface DeniedDecision extends DecisionBase {
  decision: 'deny';
  /** absent when no rule matched or a check before the rules refused */
  rule?: string;
  certDraft?: undefined;
  approval?: undefined;
  webhook?: undefined;
}

/** Discriminated on `decision`; only an allowing decision carries a certificate draft. */
export type Decision = AutoDecision | NeedsApprovalDecision | DeniedDecision;

export interface DecideContext {
  /** the user's active grants (issued and unexpired, or pending); required when a rule sets maxActive */
  activeGrants?: number;
  /** seconds; defaultTtl overrides policy defaults.ttl (a task's own defaultTtl still wins) */
  config: { maxTtl: number; backdate: number; defaultTtl?: number };
}

type Outcome<T> = { ok: true; value: T; why: string } | { ok: false; why: string };
const pass = <T>(value: T, why: string): Outcome<T> => ({ ok: true, value, why });
const fail = (why: string): Outcome<never> => ({ ok: false, why });

/** A ticket reference: the one rule the API edge and the policy check. */
export const TICKET_RE = /^[A-Za-z0-9._-]{1,64}$/;
export const TICKET_HINT = 'ticket must be 1-64 letters, digits, ., _ or -';
const PRINCIPAL_RE = /^[A-Za-z0-9._@+=:-]{1,255}$/;

// ---------- request syntax (throws) ----------

interface CheckedRequest {
  target: string;
  task: string;
  account?: string;
  ttlSeconds?: number;
  ttlText?: string;
  ticket?: string;
  reason?: string;
  sourceAddress?: string;
}

/** Refuses malformed requests before any policy lookup. */
export function checkRequestSyntax(request: AccessRequest): CheckedRequest {
  const field = (nameOf: string, value: unknown): string => {
    if (typeof value !== 'string' || !NAME_RE.test(value)) throw new JitError('invalid_field', `${nameOf}: ${NAME_HINT}`);
    return value;
  };
  const ttlSeconds = request.ttl === undefined || request.ttl === '' ? undefined : parseDuration(request.ttl, 'ttl');
  const ticket = request.ticket === undefined || request.ticket === '' ? undefined : request.ticket;
  if (ticket !== undefined && (typeof ticket !== 'string' || !TICKET_RE.test(ticket))) {
    throw new JitError('invalid_field', 'ticket: must be 1–64 letters, digits, ".", "_" or "-"');
  }
  const reason = typeof request.reason === 'string' && request.reason.trim() !== '' ? request.reason.trim() : undefined;
  if (request.reason !== undefined && typeof request.reason !== 'string') throw new JitError('invalid_field', 'reason: must be text');
  const reasonProblem = reason === undefined ? null : freeTextProblem(reason);
  if (reasonProblem) throw new JitError('invalid_field', `reason: ${reasonProblem}`);
  if (request.sourceAddress !== undefined && parseIp(request.sourceAddress) === null) {
    throw new JitError('invalid_field', 'sourceAddress: not an IP address');
  }
  return {
    target: field('target', request.target),
    task: field('task', request.task),
    account: request.account === undefined || request.account === '' ? undefined : field('account', request.account),
    ttlSeconds,
    ttlText: ttlSeconds === undefined ? undefined : formatDuration(ttlSeconds),
    ticket,
    reason,
    sourceAddress: request.sourceAddress,
  };
}

// ---------- steps ----------

export function userActive(policy: Policy, identity: Identity): Outcome<true> {
  const u = lookup(policy.users, identity.user);
  // The IdP vouches for SSO users; a users: entry only adds groups (or disables them).
  if (!u && identity.via === 'oidc') return pass(true, `user ${identity.user} signed in with SSO (no users: entry)`);
  if (!u) return fail(`user ${identity.user} is not in the policy`);
  if (u.disabled) return fail(`user ${identity.user} is disabled`);
  return pass(true, `user ${identity.user} is active`);
}

export function targetExists(policy: Policy, target: string): Outcome<Target> {
  const t = lookup(policy.targets, target);
  return t ? pass(t, `target ${target} exists`) : fail(`unknown target ${target}`);
}

export function taskExists(policy: Policy, task: string): Outcome<Task> {
  const t = lookup(policy.tasks, task);
  return t ? pass(t, `task ${task} exists`) : fail(`unknown task ${task}`);
}

/** Accounts usable for this task on this target, in the task's order. */
export function sharedAccounts(task: Task, target: Target): string[] {
  return task.accounts.filter((a) => target.accounts.includes(a));
}

export function accountAllowed(req: CheckedRequest, task: Task, target: Target): Outcome<string> {
  const shared = sharedAccounts(task, target);
  if (shared.length === 0) return fail(`task ${req.task} has no account on target ${req.target}`);
  if (req.account === undefined) return pass(shared[0], `account ${shared[0]} (first of ${shared.join(', ')})`);
  if (!shared.includes(req.account)) {
    return fail(`account ${req.account} is not allowed for task ${req.task} on ${req.target} (allowed: ${shared.join(', ')})`);
  }
  return pass(req.account, `account ${req.account} is allowed`);
}

export function ticketValid(req: CheckedRequest, task: Task): Outcome<string | undefined> {
  if (task.requireTicket === undefined) return pass(req.ticket, 'task needs no ticket');
  const needs = `task ${req.task} needs a ticket matching ${task.requireTicket}`;
  if (req.ticket === undefined) return fail(needs);
  if (!new RegExp(task.requireTicket).test(req.ticket)) return fail(`ticket ${req.ticket} does not match: ${needs}`);
  return pass(req.ticket, `ticket ${req.ticket} matches ${task.requireTicket}`);
}

export function reasonGiven(req: CheckedRequest, task: Task): Outcome<true> {
  if (!task.requireReason) return pass(true, 'task needs no reason');
  return req.reason !== undefined ? pass(true, 'reason given') : fail(`task ${req.task} needs a reason`);
}

/** Does `rule` apply to this identity, target and task? `why` says which criterion failed. */
export function ruleMatches(rule: Rule, identity: Identity, target: string, task: string): Outcome<Rule> {
  const byUser = rule.users?.includes(identity.user) ?? false;
  const byGroup = rule.groups?.some((g) => identity.groups.includes(g)) ?? false;
  if (!byUser && !byGroup) return fail(whoMismatch(rule, identity));
  if (!rule.targets.some((g) => globMatches(g, target))) return fail(`target ${target} matches none of ${list(rule.targets)}`);
  if (!rule.tasks.includes('*') && !rule.tasks.includes(task)) return fail(`task ${task} is not in ${list(rule.tasks)}`);
  return pass(rule, byUser ? `user ${identity.user} is listed` : `group ${rule.groups!.find((g) => identity.groups.includes(g))} matches`);
}

function whoMismatch(rule: Rule, identity: Identity): string {
  const parts: string[] = [];
  if (rule.users !== undefined) parts.push(`user ${identity.user} is not in ${list(rule.users)}`);
  if (rule.groups !== undefined) {
    const mine = identity.groups.length ? identity.groups.join(', ') : 'no groups';
    parts.push(`groups (${mine}) share none of ${list(rule.groups)}`);
  }
  return parts.join(' and ');
}

/** The limit on ttl and who sets it; ties go to the most specific (task, then rule). */
export function ttlLimit(
  taskName: string,
  task: Task,
  rule: Rule | undefined,
  defaults: PolicyDefaults,
  config: { maxTtl: number },
): { max: number; by: string } {
  const limits = [
    { max: task.maxTtl, by: `for task ${taskName}` },
    ...(rule?.maxTtl !== undefined ? [{ max: rule.maxTtl, by: `for rule ${rule.name}` }] : []),
    { max: defaults.maxTtl, by: 'of the policy defaults' },
    { max: config.maxTtl, by: 'of the server' },
  ];
  return limits.reduce((best, l) => (l.max < best.max ? l : best));
}

export function resolveTtl(
  req: CheckedRequest,
  task: Task,
  rule: Rule,
  policy: Policy,
  config: DecideContext['config'],
): Outcome<number> {
  const { max, by } = ttlLimit(req.task, task, rule, policy.defaults, config);
  if (req.ttlSeconds !== undefined) {
    if (req.ttlSeconds > max) return fail(`ttl ${req.ttlText} exceeds the maximum ${formatDuration(max)} ${by}`);
    return pass(req.ttlSeconds, `ttl ${req.ttlText} (maximum ${formatDuration(max)} ${by})`);
  }
  const fallback = task.defaultTtl ?? config.defaultTtl ?? policy.defaults.ttl;
  const ttl = Math.min(fallback, max);
  const clamped = ttl < fallback ? `, clamped from ${formatDuration(fallback)}` : '';
  return pass(ttl, `default ttl ${formatDuration(ttl)}${clamped} (maximum ${formatDuration(max)} ${by})`);
}

/** With capTtlToIdentity the certificate ends no later than the identity's session or token. */
export function capTtlToIdentity(ttl: number, rule: Rule, identity: Identity, now: Date): Outcome<number> {
  if (!rule.capTtlToIdentity) return pass(ttl, 'not capped');
  if (identity.expiresAt === undefined) return pass(ttl, 'identity has no expiry');
  const left = Math.floor((identity.expiresAt - now.getTime()) / 1000);
  if (left < 1) return fail(`rule ${rule.name} caps the certificate to the identity, which has expired`);
  return left < ttl
    ? pass(left, `ttl capped to ${formatDuration(left)}, when the identity expires`)
    : pass(ttl, `identity outlives the ttl (${formatDuration(left)} left)`);
}

/** Weekday and minute after midnight of `now` in `timeZone`. */
export function localTime(now: Date, timeZone: string): { day: Weekday; minute: number } {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(now);
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return { day: part('weekday').toLowerCase().slice(0, 3) as Weekday, minute: Number(part('hour')) * 60 + Number(part('minute')) };
}

export function withinSchedule(schedule: Schedule, now: Date): boolean {
  const { day, minute } = localTime(now, schedule.timezone);
  return schedule.days.includes(day) && minute >= schedule.from && minute < schedule.to;
}

/** Inside the window: the rule's own approval. Outside: deny, or approval by the schedule's approvers. */
export function scheduleAllows(rule: Rule, now: Date): Outcome<ApproverSet | null> {
  const s = rule.schedule;
  if (!s) return pass(null, 'no schedule');
  const window = `${s.days.join(',')} ${s.hours} ${s.timezone}`;
  if (withinSchedule(s, now)) return pass(null, `inside ${window}`);
  if (s.outside === 'deny') return fail(`outside the schedule of rule ${rule.name} (${window})`);
  return pass({ approvers: s.approvers!, count: s.count! }, `outside ${window}: needs approval`);
}

export function maxActive(rule: Rule, activeGrants: number | undefined): Outcome<true> {
  if (rule.maxActive === undefined) return pass(true, 'no limit');
  if (activeGrants === undefined) return fail(`maxActive ${rule.maxActive} set but the active grant count is unknown`);
  if (activeGrants >= rule.maxActive) return fail(`maxActive ${rule.maxActive} reached (${activeGrants} active)`);
  return pass(true, `${activeGrants} of ${rule.maxActive} active`);
}

/** The source-address critical option, or undefined when the rule binds nothing. */
export function sourceAddress(rule: Rule, requester: string | undefined): Outcome<string | undefined> {
  const configured = rule.sourceAddresses?.map((c) => parseCidr(c)!);
  if (!rule.bindSourceAddress) {
    return configured ? pass(configured.map(formatCidr).join(','), 'bound to the configured addresses') : pass(undefined, 'not bound');
  }
  const ip = requester === undefined ? null : parseIp(requester);
  if (!ip) return fail(`rule ${rule.name} binds the certificate to the requester's address, which is unknown`);
  const text = formatIp(ip);
  if (configured && !configured.some((c) => cidrContains(c, ip))) {
    return fail(`requester address ${text} is not in ${configured.map(formatCidr).join(', ')}`);
  }
  const bound = `${text}/${ip.version === 4 ? 32 : 128}`;
  return pass(bound, `bound to ${bound}`);
}

/** The principals for one account on one target; throws if a principal would be unsafe. */
export function renderPrincipals(format: string, vars: { account: string; target: string; user: string }): string[] {
  const principal = format.replace(/\{(account|target|user)\}/g, (_, k: keyof typeof vars) => vars[k]);
  if (!PRINCIPAL_RE.test(principal)) {
    throw new JitError('invalid_field', `principal "${principal.slice(0, 80)}" contains characters a principal must not have`);
  }
  return [principal];
}

export function approvalOf(rule: Rule, outsideSchedule: ApproverSet | null): ApproverSet | null {
  if (outsideSchedule) return outsideSchedule;
  return typeof rule.approval === 'object' ? rule.approval : null;
}

// ---------- the decision ----------

export function decide(request: AccessRequest, identity: Identity, policy: Policy, now: Date, ctx: DecideContext): Decision {
  const req = checkRequestSyntax(request);
  const steps: Step[] = [];
  const run = <T>(step: StepName, outcome: Outcome<T>): Outcome<T> => {
    steps.push({ step, ok: outcome.ok, why: outcome.why });
    return outcome;
  };
  const deny = (step: StepName, why: string, rule?: string): DeniedDecision => ({
    decision: 'deny',
    ...(rule ? { rule } : {}),
    reasons: [{ step, message: why }],
    steps,
  });

  const user = run('userActive', userActive(policy, identity));
  if (!user.ok) return deny('userActive', user.why);
  const target = run('targetExists', targetExists(policy, req.target));
  if (!target.ok) return deny('targetExists', target.why);
  const task = run('taskExists', taskExists(policy, req.task));
  if (!task.ok) return deny('taskExists', task.why);
  const account = run('accountAllowed', accountAllowed(req, task.value, target.value));
  if (!account.ok) return deny('accountAllowed', account.why);
  const ticket = run('ticketValid', ticketValid(req, task.value));
  if (!ticket.ok) return deny('ticketValid', ticket.why);
  const reason = run('reasonGiven', reasonGiven(req, task.value));
  if (!reason.ok) return deny('reasonGiven', reason.why);

  const rule = matchRules(policy.rules, identity, req, steps);
  if (!rule) return deny('ruleMatches', 'no rule matches');
  const name = rule.name;
  if (rule.approval === 'deny') return deny('approval', run('approval', fail(`rule ${name} denies this request`)).why, name);

  const ttl = run('resolveTtl', resolveTtl(req, task.value, rule, policy, ctx.config));
  if (!ttl.ok) return deny('resolveTtl', ttl.why, name);
  const capped = run('capTtlToIdentity', capTtlToIdentity(ttl.value, rule, identity, now));
  if (!capped.ok) return deny('capTtlToIdentity', capped.why, name);
  const schedule = run('scheduleAllows', scheduleAllows(rule, now));
  if (!schedule.ok) return deny('scheduleAllows', schedule.why, name);
  const active = run('maxActive', maxActive(rule, ctx.activeGrants));
  if (!active.ok) return deny('maxActive', active.why, name);
  const source = run('sourceAddress', sourceAddress(rule, req.sourceAddress));
  if (!source.ok) return deny('sourceAddress', source.why, name);

  const principals = renderPrincipals(target.value.principalFormat, { account: account.value, target: req.target, user: identity.user });
  run('principals', pass(principals, principals.join(',')));

  const certDraft: CertDraft = {
    user: identity.user,
    target: req.target,
    task: req.task,
    account: account.value,
    ...(ticket.value !== undefined ? { ticket: ticket.value } : {}),
    principals,
    ttlSeconds: capped.value,
    ...(rule.capTtlToIdentity && identity.expiresAt !== undefined ? { notAfter: Math.floor(identity.expiresAt / 1000) } : {}),
    backdateSeconds: policy.defaults.backdate ?? ctx.config.backdate,
    criticalOptions: criticalOptions(task.value, source.value),
    extensions: Object.fromEntries(task.value.extensions.map((e) => [e, ''])),
  };
  const approval = approvalOf(rule, schedule.value);
  const common = { rule: name, steps, certDraft, ...(rule.webhook ? { webhook: rule.webhook } : {}) };
  if (!approval) {
    run('approval', pass(null, `rule ${name} approves automatically`));
    return { decision: 'auto', reasons: [], ...common };
  }
  const why = `needs ${approval.count} approval${approval.count === 1 ? '' : 's'} from ${approval.approvers.join(', ')}`;
  run('approval', pass(approval, why));
  return { decision: 'approval', reasons: [{ step: 'approval', message: why }], approval, ...common };
}

/** Evaluates every rule (so explanations can say why each did not match); the first match decides. */
function matchRules(rules: Rule[], identity: Identity, req: CheckedRequest, steps: Step[]): Rule | undefined {
  let first: Rule | undefined;
  for (const rule of rules) {
    const m = ruleMatches(rule, identity, req.target, req.task);
    const why = m.ok && first ? `also matches, but rule ${first.name} comes first` : m.why;
    steps.push({ step: 'ruleMatches', ok: m.ok, why, rule: rule.name });
    if (m.ok && !first) first = rule;
  }
  return first;
}

/** The first rule that applies, for callers that only need to know which (listAllowed). */
export function firstMatchingRule(policy: Policy, identity: Identity, target: string, task: string): Rule | undefined {
  return policy.rules.find((r) => ruleMatches(r, identity, target, task).ok);
}

function criticalOptions(task: Task, source: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (task.forceCommand !== undefined) out['force-command'] = task.forceCommand;
  if (source !== undefined) out['source-address'] = source;
  return out;
}

function lookup<V>(rec: Record<string, V>, key: string): V | undefined {
  return Object.hasOwn(rec, key) ? rec[key] : undefined;
}

function list(items: string[]): string {
  return items.length ? `[${items.join(', ')}]` : '[] (empty: matches nothing)';
}
