/**
 * Turns the server's "no" for a target or task the requester cannot see into an input error
 * with a "did you mean".
 *
 * The server answers 403 policy_denied both for names that do not exist and for names the
 * requester may not use, so a request never tells who may see what. The CLI may say more, but
 * only from GET /v1/targets, which lists exactly what this requester may request: a name
 * missing from that list is "not one of yours" (exit 1, a typo most of the time), and the
 * suggestions come from that list only, never from the policy.
 */
import { JitError } from '../../errors.js';
import type { AllowedTarget } from '../../client/api.js';

/** Edit distance (insert, delete, substitute, swap of neighbours), stopping early past `max`. */
export function editDistance(a: string, b: string, max = 3): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    rows.push([i]);
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        rows[0].push(j);
        continue;
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2][j - 2] + 1);
      rows[i].push(d);
    }
  }
  return rows[a.length][b.length];
}

/** The closest names (at most three), for "did you mean"; prefixes count as close. */
export function closest(name: string, candidates: readonly string[]): string[] {
  const limit = Math.max(1, Math.min(3, Math.floor(name.length / 3)));
  return candidates
    .map((c) => ({ c, d: c.startsWith(name) || name.startsWith(c) ? 1 : editDistance(name.toLowerCase(), c.toLowerCase(), limit) }))
    .filter((x) => x.d <= limit)
    .sort((x, y) => x.d - y.d || x.c.localeCompare(y.c))
    .slice(0, 3)
    .map((x) => x.c);
}

function didYouMean(name: string, candidates: readonly string[]): string {
  const near = closest(name, candidates);
  return near.length ? `; did you mean ${near.join(' or ')}?` : '';
}

/**
 * The input error for a target or task missing from the requester's own list, or undefined
 * when both are on it (then the denial is about something else: ticket, schedule, limits).
 */
export function unknownNameError(allowed: readonly AllowedTarget[], target: string, task: string): JitError | undefined {
  const t = allowed.find((x) => x.target === target);
  if (!t) {
    return new JitError(
      'invalid_field',
      `target: ${target} is not a target you may request${didYouMean(target, allowed.map((x) => x.target))} (jit-ssh targets lists yours)`,
    );
  }
  if (!t.tasks.some((k) => k.task === task)) {
    return new JitError(
      'invalid_field',
      `task: ${task} is not a task you may request on ${target}${didYouMean(task, t.tasks.map((k) => k.task))} (yours there: ${t.tasks.map((k) => k.task).join(', ')})`,
    );
  }
  return undefined;
}
