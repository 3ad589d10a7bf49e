/**
 * The access report's join over audit records (pure), its filters, its CSV (quoting and formula
 * injection), the HTML escaper, the SVG timeline, and `jit-sshd audit report` streaming a log of
 * 100,000 records with bounded memory.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { accessReport, csvCell, csvLine, parseReportFilter, parseWhen, rowsOf, type ReportFilter } from '../../src/service/report.js';
import { escapeHtml, html } from '../../src/server/web/html.js';
import { timelineSvg } from '../../src/server/web/timeline.js';
import { isJitError } from '../../src/errors.js';
import { REPO } from '../helpers/daemon.js';
import { tempDir } from '../helpers/keys.js';

type Rec = Record<string, unknown> & { type: string; time: string };
const T0 = Date.parse('2026-11-01T10:00:00Z');
const at = (min: number) => new Date(T0 + min * 60_000).toISOString();

function issue(id: string, min: number, over: Partial<Rec> = {}): Rec {
  const va = Math.floor((T0 + min * 60_000) / 1000);
  return {
    type: 'issue', time: at(min), id, user: 'alice', target: 'prod-db', task: 'incident', account: 'postgres', ticket: 'INC-1',
    rule: 'r', serial: '7', principals: ['postgres@prod-db'], validAfter: va - 60, validBefore: va + 900, approvals: [], ...over,
  };
}

async function collect(recs: Rec[], f: ReportFilter = {}) {
  const out = [];
  for await (const r of rowsOf(recs, f)) out.push(r);
  return out;
}

describe('access report join', () => {
  it('ok/a grant carries the waiting request\'s reason, its approvers, and who revoked it, why and when', async () => {
    const rows = await collect([
      { type: 'request', time: at(0), id: 'req_a', status: 'pending', reason: 'db down' },
      { type: 'approve', time: at(1), id: 'req_a', by: 'bob' },
      issue('req_a', 1, { approvals: ['bob'] }),
      { type: 'auth', time: at(2), user: 'x' },
      { type: 'revoke', time: at(5), id: 'req_a', by: 'erin', reason: 'done' },
    ]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id: 'req_a', reason: 'db down', approvedBy: ['bob'], revokedBy: 'erin', revokeReason: 'done', revokedAt: T0 + 5 * 60_000 });
  });

  it('ok/rows come out in issue order, a revocation after expiry does not count, denied requests are not access', async () => {
    const rows = await collect([
      issue('req_1', 0, { reason: 'auto' }),
      { type: 'request', time: at(1), id: 'req_x', status: 'pending', reason: 'no' },
      { type: 'reject', time: at(2), id: 'req_x', by: 'bob', reason: 'freeze' },
      issue('req_2', 3, { user: 'dave' }),
      { type: 'revoke', time: at(4), id: 'req_2', by: 'dave' },
      { type: 'auth', time: at(60), user: 'x' },
      { type: 'revoke', time: at(61), id: 'req_1', by: 'late' },
    ]);
    expect(rows.map((r) => r.id)).toEqual(['req_1', 'req_2']);
    expect(rows[0].revokedBy).toBeUndefined();
    expect(rows[0].reason).toBe('auto');
  });

  it('ok/filters: user, target, and a time window that keeps grants overlapping it', async () => {
    const recs = [issue('a', 0), issue('b', 100, { user: 'dave' }), issue('c', 200, { target: 'vault' })];
    expect((await collect(recs, { user: 'dave' })).map((r) => r.id)).toEqual(['b']);
    expect((await collect(recs, { target: 'vault' })).map((r) => r.id)).toEqual(['c']);
    // a ends at minute 15, b runs 99..115, c starts at 199
    expect((await collect(recs, { since: T0 + 10 * 60_000, until: T0 + 100 * 60_000 })).map((r) => r.id)).toEqual(['a', 'b']);
    expect((await collect(recs, { since: T0 + 16 * 60_000, until: T0 + 98 * 60_000 })).map((r) => r.id)).toEqual([]);
  });

  it('fail/filters from people are validated with a message naming the field', () => {
    const now = T0;
    expect(parseWhen('7d', 'since', now)).toBe(now - 7 * 86_400_000);
    expect(parseWhen('2026-11-01', 'since', now)).toBe(Date.parse('2026-11-01T00:00:00Z'));
    expect(parseWhen('2026-11-01T12:00Z', 'until', now)).toBe(Date.parse('2026-11-01T12:00:00Z'));
    for (const [raw, field] of [[{ since: 'yesterday' }, 'since'], [{ user: '../x' }, 'user'], [{ since: '2026-11-02', until: '2026-11-01' }, 'since']] as const) {
      try {
        parseReportFilter(raw, now);
        expect.unreachable();
      } catch (e) {
        expect(isJitError(e) && e.code).toBe('invalid_field');
        expect((e as Error).message.startsWith(`${field}:`)).toBe(true);
      }
    }
  });
});

describe('CSV and HTML output', () => {
  it('ok/CSV quotes per RFC 4180 and defuses formulas', () => {
    expect(csvCell('plain')).toBe('plain');
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('say "hi"\nbye')).toBe('"say ""hi""\nbye"');
    expect(csvCell('=HYPERLINK("http://evil")')).toBe(`"'=HYPERLINK(""http://evil"")"`);
    expect(csvCell('+1')).toBe("'+1");
    expect(csvCell('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvLine(['a', 'b'])).toBe('a,b\r\n');
  });

  it('ok/every interpolated value is escaped; Html made by the tag is not escaped twice', () => {
    expect(escapeHtml(`<a href="x" onclick='y'>&</a>`)).toBe('&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
    const reason = '<script>alert(1)</script>';
    expect(html`<p title="${reason}">${reason}</p>`.text).toBe('<p title="&lt;script&gt;alert(1)&lt;/script&gt;">&lt;script&gt;alert(1)&lt;/script&gt;</p>');
    expect(html`<ul>${['<i>', html`<b>ok</b>`]}</ul>`.text).toBe('<ul>&lt;i&gt;<b>ok</b></ul>');
    expect(html`${undefined}${null}${false}${0}`.text).toBe('0');
  });

  it('ok/the timeline draws one lane per grant, approvals and revocations, and escapes names', async () => {
    const rows = await collect([
      issue('a', 0, { approvals: ['bob'], user: 'eve<x>' }),
      issue('b', 5),
      { type: 'revoke', time: at(8), id: 'b', by: 'erin' },
    ]);
    const svg = timelineSvg('prod-db', rows, { from: T0 - 60_000, to: T0 + 20 * 60_000 }).text;
    expect(svg.match(/class="bar/g)).toHaveLength(2);
    expect(svg.match(/class="approved"/g)).toHaveLength(1);
    expect(svg.match(/class="revoke"/g)).toHaveLength(1);
    expect(svg).toContain('eve&lt;x&gt;');
    expect(svg).not.toContain('<x>');
  });
});

describe('jit-sshd audit report', () => {
  it('ok/streams 100,000 records as CSV, JSON lines or a table without holding the log in memory', () => {
    const t = tempDir('jit-report-');
    try {
      const dataDir = join(t.dir, 'data');
      spawnSync('mkdir', ['-p', dataDir]);
      const lines: string[] = [];
      const N = 100_000;
      for (let i = 0; i < N; i++) {
        const min = i; // one record a minute
        const rec = i % 4 === 0
          ? issue(`req_${i}`, min, { user: `u${i % 50}`, reason: 'r'.repeat(200), certificate: 'x'.repeat(700) })
          : i % 4 === 1 ? { type: 'revoke', time: at(min), id: `req_${i - 1}`, by: 'erin', reason: 'done' } : { type: 'auth', time: at(min), user: 'x', method: 'ssh-key' };
        lines.push(JSON.stringify({ ...rec, seq: i + 1 }));
      }
      writeFileSync(join(dataDir, 'audit.jsonl'), lines.join('\n') + '\n');
      const config = join(t.dir, 'jit-sshd.yaml');
      writeFileSync(config, `dataDir: ${dataDir}\n`);
      const run = (...args: string[]) =>
        spawnSync(process.execPath, ['--max-old-space-size=64', join(REPO, 'dist/cli/jit-sshd.js'), 'audit', 'report', '--config', config, ...args], { encoding: 'utf8', maxBuffer: 256 << 20 });
      const csv = run('--format', 'csv');
      expect(csv.status, csv.stderr).toBe(0);
      const rows = csv.stdout.trim().split('\r\n');
      expect(rows).toHaveLength(1 + N / 4);
      expect(rows[1]).toContain('req_0,u0,prod-db,postgres,postgres@prod-db,incident,');
      expect(rows[1]).toContain(',erin,done');
      const json = run('--format', 'json', '--user', 'u4');
      expect(json.status, json.stderr).toBe(0);
      const objs = json.stdout.trim().split('\n').map((l) => JSON.parse(l));
      expect(objs).toHaveLength(N / 4 / 25); // i ≡ 0 mod 4 → only even users, 25 of them
      expect(objs.every((o) => o.user === 'u4' && o.revokedBy === 'erin')).toBe(true);
      const table = run('--since', '2026-11-01T10:00Z', '--until', '2026-11-01T10:10Z');
      expect(table.status, table.stderr).toBe(0);
      expect(table.stdout.split('\n')[0]).toMatch(/^FROM \(UTC\)/);
      expect(table.stdout.trim().split('\n')).toHaveLength(1 + 3); // req_0, req_4, req_8
      const bad = run('--since', 'last tuesday');
      expect(bad.status).toBe(1);
      expect(bad.stderr).toMatch(/^error: since:/);
    } finally {
      t.cleanup();
    }
  }, 60_000);

  it('fail/a missing audit log is a clear error', async () => {
    await expect(async () => {
      for await (const _ of accessReport('/nonexistent/audit.jsonl')) void _;
    }).rejects.toThrow(/cannot read the audit log/);
  });
});
