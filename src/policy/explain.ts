/**
 * Human-facing views of the policy: the text `jit-sshd policy check` prints, and the list of
 * targets and tasks an identity may request (GET /v1/targets, `jit-ssh targets`).
 */
import { formatDuration } from './duration.js';
import {
  approvalOf,
  firstMatchingRule,
  scheduleAllows,
  sharedAccounts,
  ttlLimit,
  userActive,
  type Decision,
  type Identity,
} from './decide.js';
import type { ApproverSet, Policy } from './schema.js';

const HEADLINE = { auto: 'auto-approve', approval: 'needs approval', deny: 'deny' } as const;

/** Decision, deciding rule, certificate draft, each step, and why every other rule did not decide. */
export function explainDecision(decision: Decision): string {
  const lines = [`decision: ${HEADLINE[decision.decision]}${decision.rule ? ` (rule ${decision.rule})` : ''}`];
  for (const r of decision.reasons) lines.push(`  ${decision.decision === 'deny' ? 'reason' : 'note'}: ${r.message} [${r.step}]`);
  if (decision.certDraft) {
    const d = decision.certDraft;
    lines.push(`certificate: principals ${d.principals.join(',')}, ttl ${formatDuration(d.ttlSeconds)}, account ${d.account}`);
    const opts = Object.entries(d.criticalOptions).map(([k, v]) => `${k}=${v}`);
    if (opts.length) lines.push(`  critical options: ${opts.join('; ')}`);
    lines.push(`  extensions: ${Object.keys(d.extensions).join(', ') || '(none)'}`);
  }
  lines.push('steps:');
  for (const s of decision.steps.filter((s) => s.step !== 'ruleMatches')) {
    lines.push(`  ${s.ok ? 'ok  ' : 'FAIL'} ${s.step}: ${s.why}`);
  }
  const ruleSteps = decision.steps.filter((s) => s.step === 'ruleMatches');
  if (ruleSteps.length) {
    lines.push('rules:');
    for (const s of ruleSteps) {
      const verdict = s.rule === decision.rule ? 'decides' : s.ok ? 'skipped' : 'no match';
      lines.push(`  ${s.rule}: ${verdict}${s.rule === decision.rule ? '' : ` — ${s.why}`}`);
    }
  }
  return lines.join('\n');
}

export interface AllowedTask {
  task: string;
  description?: string;
  /** accounts this task may use on this target; the first is the default */
  accounts: string[];
  /** what a well-formed request (ticket, ttl, reason as required) would get now */
  approval: 'auto' | 'approval';
  approvers?: ApproverSet;
  rule: string;
  requireTicket?: string;
  requireReason: boolean;
  /** seconds */
  maxTtl: number;
  defaultTtl: number;
}

export interface AllowedTarget {
  target: string;
  description?: string;
  hosts: string[];
  tasks: AllowedTask[];
}

/**
 * Every target × task the identity could get a certificate for at `now`, sorted by name.
 * Request-specific checks (ticket, ttl, source address, maxActive) are not applied; their
 * requirements are listed instead. Denied combinations are left out.
 */
export function listAllowed(
  identity: Identity,
  policy: Policy,
  now: Date,
  config: { maxTtl: number; defaultTtl?: number } = { maxTtl: Number.POSITIVE_INFINITY },
): AllowedTarget[] {
  if (!userActive(policy, identity).ok) return [];
  const out: AllowedTarget[] = [];
  for (const targetName of Object.keys(policy.targets).sort()) {
    const target = policy.targets[targetName];
    const tasks: AllowedTask[] = [];
    for (const taskName of Object.keys(policy.tasks).sort()) {
      const task = policy.tasks[taskName];
      const accounts = sharedAccounts(task, target);
      if (accounts.length === 0) continue;
      const rule = firstMatchingRule(policy, identity, targetName, taskName);
      if (!rule || rule.approval === 'deny') continue;
      const schedule = scheduleAllows(rule, now);
      if (!schedule.ok) continue;
      const approval = approvalOf(rule, schedule.value);
      const { max } = ttlLimit(taskName, task, rule, policy.defaults, config);
      tasks.push({
        task: taskName,
        ...(task.description !== undefined ? { description: task.description } : {}),
        accounts,
        approval: approval ? 'approval' : 'auto',
        ...(approval ? { approvers: approval } : {}),
        rule: rule.name,
        ...(task.requireTicket !== undefined ? { requireTicket: task.requireTicket } : {}),
        requireReason: task.requireReason,
        maxTtl: max,
        defaultTtl: Math.min(task.defaultTtl ?? config.defaultTtl ?? policy.defaults.ttl, max),
      });
    }
    if (tasks.length) {
      out.push({
        target: targetName,
        ...(target.description !== undefined ? { description: target.description } : {}),
        hosts: [...target.hosts],
        tasks,
      });
    }
  }
  return out;
}
