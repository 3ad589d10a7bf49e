/**
 * Web figures for `npm run bench` (also runs alone: `node scripts/bench/web.mjs` prints JSON).
 *
 *   report_render_ms     server time to render the access report page over an audit log of
 *                        100,000 records (requests, approvals, issues with certificates,
 *                        logins, revocations), median over rounds, worst case: a time filter
 *                        matching only the last grants, so every record is read and parsed.
 *                        Details: one target's grants spread over the log (user/target filters
 *                        skip other lines unparsed) and the unfiltered first page.        ≤ 1000
 *   approvals_page_kb    bytes of the "waiting for me" page with 10 pending requests, plus the
 *                        one stylesheet and one script it loads (HTML + CSS + JS), in KiB. ≤ 50
 *
 * Both call the daemon's own code (dist/server/web/*): the same functions the routes run.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median } from './load.mjs';

const RECORDS = 100_000;
const round2 = (x) => Math.round(x * 100) / 100;

/** A realistic log: per grant request → approve → issue (with certificate), logins between, every 5th revoked. */
function writeAuditLog(file) {
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  const cert = 'ssh-ed25519-cert-v01@openssh.com ' + 'A'.repeat(620);
  const lines = [];
  let seq = 0;
  let grant = 0;
  const push = (rec) => lines.push(JSON.stringify({ ...rec, seq: ++seq, prevHash: '0'.repeat(64), hash: '0'.repeat(64) }));
  while (seq < RECORDS) {
    const id = `req_${String(grant).padStart(16, '0')}`;
    const ms = t0 + grant * 60_000;
    const time = (d) => new Date(ms + d).toISOString();
    const target = grant % 100 === 0 ? 'audited-db' : `prod-${grant % 40}`;
    const user = `user${grant % 300}`;
    push({ type: 'auth', time: time(0), method: 'ssh-key', user, keyFingerprint: 'SHA256:' + 'x'.repeat(43) });
    push({ type: 'request', time: time(1), id, user, target, task: 'incident', ticket: `INC-${grant}`, status: 'pending', account: 'postgres', approvers: ['sre-leads'], count: 1, reason: 'replica lag after the failover, need to look at pg_stat_replication' });
    push({ type: 'approve', time: time(2), id, user, by: 'lead', comment: 'ok', approvals: 1, needed: 1 });
    const va = Math.floor((ms + 2) / 1000);
    push({ type: 'issue', time: time(3), id, user, target, task: 'incident', account: 'postgres', ticket: `INC-${grant}`, rule: 'incident-with-approval', serial: String(grant + 1), keyId: `jit-ssh:${id}:${user}:incident`, principals: [`postgres@${target}`], criticalOptions: {}, extensions: { 'permit-pty': '' }, validAfter: va - 60, validBefore: va + 900, ca: 'SHA256:' + 'c'.repeat(43), keyFingerprint: 'SHA256:' + 'k'.repeat(43), approvals: ['lead'], publicKey: 'ssh-ed25519 ' + 'B'.repeat(68), certificate: cert });
    if (grant % 5 === 0) push({ type: 'revoke', time: time(30_000), id, user, by: user, reason: 'done', serial: String(grant + 1) });
    grant++;
  }
  writeFileSync(file, lines.slice(0, RECORDS).join('\n') + '\n');
  return { grants: grant };
}

export async function benchWeb({ quick = false, progress = () => {} } = {}) {
  const { REPO } = await import('./fixture.mjs');
  const dist = (p) => import(join(REPO, 'dist', p));
  const [{ renderReport }, { parseReportFilter }, pages, assets] = await Promise.all([
    dist('server/web/report-page.js'),
    dist('service/report.js'),
    dist('server/web/pages.js'),
    dist('server/web/assets.js'),
  ]);
  const dir = mkdtempSync(join(tmpdir(), 'jit-bench-web-'));
  try {
    const file = join(dir, 'audit.jsonl');
    progress(`web: writing an audit log of ${RECORDS} records`);
    const { grants } = writeAuditLog(file);
    const parse = (q) => parseReportFilter({ target: q.target, user: q.user, since: q.since, until: q.until }, Date.now());
    const rounds = quick ? 3 : 9;
    const scan = [];
    const byTarget = [];
    const firstPage = [];
    const lastHour = new Date(Date.parse('2026-01-01T00:00:00Z') + (grants - 60) * 60_000).toISOString();
    let bytes = 0;
    for (let r = 0; r < rounds; r++) {
      let t = performance.now();
      const html = await renderReport(file, parse, { since: lastHour });
      scan.push(performance.now() - t);
      bytes = html.text.length;
      t = performance.now();
      await renderReport(file, parse, { target: 'audited-db' });
      byTarget.push(performance.now() - t);
      t = performance.now();
      await renderReport(file, parse, {});
      firstPage.push(performance.now() - t);
    }
    progress(`web: report over ${RECORDS} records: ${round2(median(scan))} ms (every record parsed), ${round2(median(byTarget))} ms (one target), ${round2(median(firstPage))} ms (first 500 rows)`);

    const now = Date.now();
    const recs = Array.from({ length: 10 }, (_, i) => ({
      id: `req_${String(i).padStart(16, 'a')}`, user: `user${i}`, target: 'prod-db', task: 'incident', account: 'postgres', ticket: `INC-${i}`,
      reason: 'replica lag after the failover, need to look at pg_stat_replication and the WAL sender', status: 'pending', createdAt: now - i * 60_000,
      expiresAt: now + 3_600_000, rule: 'incident-with-approval', approval: { approvers: ['sre-leads'], count: 2 }, approvals: i % 2 ? [{ by: 'lead', at: now, comment: 'ok from me' }] : [],
      publicKey: '', draft: { account: 'postgres', principals: ['postgres@prod-db'], ttlSeconds: 3600, criticalOptions: {}, extensions: {} },
    }));
    const viewer = { user: 'lead2', auditor: true, csrf: 'x'.repeat(43) };
    const page = pages.layout('Waiting for me', pages.waitingPage(recs, now, viewer.csrf), { viewer, seq: 123456 });
    const weight = Buffer.byteLength(page) + Buffer.byteLength(assets.APP_CSS) + Buffer.byteLength(assets.APP_JS);
    return {
      report_render_ms: round2(median(scan)),
      approvals_page_kb: round2(weight / 1024),
      web: { records: RECORDS, grants, report_one_target_ms: round2(median(byTarget)), report_first_page_ms: round2(median(firstPage)), report_html_kb: round2(bytes / 1024), approvals_html_bytes: Buffer.byteLength(page), css_bytes: Buffer.byteLength(assets.APP_CSS), js_bytes: Buffer.byteLength(assets.APP_JS) },
      notes: [],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  benchWeb({ quick: process.env.BENCH_QUICK === '1', progress: (m) => process.stderr.write(`[bench] ${m}\n`) }).then((r) => process.stdout.write(JSON.stringify(r) + '\n'));
}
