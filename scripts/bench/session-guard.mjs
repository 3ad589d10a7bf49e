#!/usr/bin/env node
/**
 * node scripts/bench/session-guard.mjs — how promptly the host's session guard ends sessions.
 *
 * Runs the real-OpenSSH scenario of test/e2e/session-guard.test.ts ("50 sessions with staggered
 * expiries": a jit-sshd, a host set up by host-setup.sh, its sshd, 50 ssh sessions on 8-17 s
 * certificates) and reports, over those sessions, the seconds after the certificate's
 * validBefore at which the ssh connection ended, and then the guard's CPU use while idle.
 *
 *   lateness_p50_s / lateness_p99_s   seconds after validBefore              goal p99 ≤ 2
 *   idle_cpu_percent                  guard CPU (with its children) over an idle stretch  ≈ 0
 *
 * Options (env): SESSION_GUARD_IDLE_SECONDS (default 60) for the idle stretch.
 * Progress goes to stderr; stdout gets a table and, on its last line, one JSON object.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const REPO = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'jit-guard-bench-'));
const report = join(dir, 'report.json');
const idle = process.env.SESSION_GUARD_IDLE_SECONDS ?? '60';
process.stderr.write(`[bench] session guard: 50 sessions with staggered expiries, then ${idle} s idle\n`);
const r = spawnSync(
  process.execPath,
  [join(REPO, 'node_modules/vitest/vitest.mjs'), 'run', '--config', 'test/vitest.config.ts', 'test/e2e/session-guard.test.ts', '-t', '50 sessions'],
  { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, SESSION_GUARD_REPORT: report, SESSION_GUARD_IDLE_SECONDS: idle } },
);
let figures;
try {
  figures = JSON.parse(readFileSync(report, 'utf8'));
} catch {
  process.stderr.write(`[bench] the scenario did not report (vitest exit ${r.status})\n`);
  process.exit(1);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const round = (x, n = 2) => Math.round(x * 10 ** n) / 10 ** n;
const out = {
  sessions: figures.sessions,
  lateness_p50_s: round(figures.p50),
  lateness_p99_s: round(figures.p99),
  lateness_max_s: round(figures.max),
  idle_seconds: figures.idleCpu.seconds,
  idle_cpu_seconds: round(figures.idleCpu.cpuSeconds),
  idle_cpu_percent: round((100 * figures.idleCpu.cpuSeconds) / figures.idleCpu.seconds, 3),
  load_average_1m: round(Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0])),
};
const rows = [
  ['lateness p50 (s after validBefore)', out.lateness_p50_s, '—'],
  ['lateness p99', out.lateness_p99_s, '≤ 2'],
  ['lateness max', out.lateness_max_s, '≤ 5 (asserted by the test)'],
  [`guard CPU while idle (${out.idle_seconds} s)`, `${out.idle_cpu_percent} %`, '≈ 0'],
  ['machine load average (1 min)', out.load_average_1m, ''],
];
for (const [name, value, goal] of rows) process.stdout.write(`${name.padEnd(40)} ${String(value).padEnd(10)} ${goal}\n`);
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(r.status === 0 ? 0 : 1);
