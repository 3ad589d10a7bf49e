/**
 * The access report: who held which principals on which target, from when to when, why, who
 * approved and who revoked — built from the audit log in one streaming pass. Memory holds only
 * requests still waiting and grants still open at the point reached, never the whole log.
 *
 * Rows come out in issue order. A row is final once it was revoked or the log has moved past its
 * end (validBefore), so the report can be streamed to a CSV download or a terminal as it goes.
 */
import { open } from 'node:fs/promises';
import { JitError } from '../errors.js';
import { NAME_RE } from '../policy/names.js';
import { tryParseDuration } from '../policy/duration.js';
import { readLines } from '../store/audit.js';

export interface ReportFilter {
  /** ms since the epoch: grants that ended before are left out. */
  since?: number;
  /** ms since the epoch: grants that started after are left out. */
  until?: number;
  user?: string;
  target?: string;
}

export interface AccessRow {
  id: string;
  user: string;
  target: string;
  account?: string;
  principals: string[];
  task: string;
  reason?: string;
  ticket?: string;
  rule?: string;
  serial: string;
  /** ms since the epoch: the certificate's validAfter and validBefore. */
  from: number;
  until: number;
  /** ms since the epoch the grant was issued (the final approval for approved ones). */
  issuedAt: number;
  approvedBy: string[];
  revokedAt?: number;
  revokedBy?: string;
  revokeReason?: string;
}

/** When access really ended: the revocation if it came first. */
export const endOf = (r: AccessRow): number => (r.revokedAt !== undefined && r.revokedAt < r.until ? r.revokedAt : r.until);

/** Lines the report reads; everything else (auth, checkpoints…) is skipped without parsing. */
const WANTED = /"type":"(?:issue|request|revoke|reject|expire)"/;
/** Waiting requests remembered for their reason (the oldest is forgotten beyond this). */
const MAX_WAITING = 100_000;

type Rec = Record<string, unknown> & { type: string; time: string };
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export function matches(row: AccessRow, f: ReportFilter): boolean {
  if (f.user !== undefined && row.user !== f.user) return false;
  if (f.target !== undefined && row.target !== f.target) return false;
  if (f.since !== undefined && endOf(row) < f.since) return false;
  if (f.until !== undefined && row.from > f.until) return false;
  return true;
}

/** Report rows from the audit log file, filtered, in issue order. */
export async function* accessReport(auditFile: string, filter: ReportFilter = {}): AsyncGenerator<AccessRow> {
  let fh;
  try {
    fh = await open(auditFile, 'r');
  } catch (e) {
    throw new JitError('not_found', `cannot read the audit log ${auditFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    yield* rowsOf(recordsOf(readLines(fh), quickReject(filter)), filter);
  } finally {
    await fh.close();
  }
}

/**
 * With a user or target filter, request and issue lines of others are skipped unparsed. The log
 * is written as canonical JSON (no spaces), and names are plain (the name rule), so a record of
 * that user or target always holds the exact text `"user":"NAME"`.
 */
function quickReject(f: ReportFilter): (text: string) => boolean {
  const needles = [f.user === undefined ? '' : `"user":"${f.user}"`, f.target === undefined ? '' : `"target":"${f.target}"`].filter(Boolean);
  if (needles.length === 0) return () => false;
  return (text) => !text.includes('"type":"revoke"') && needles.some((n) => !text.includes(n));
}

async function* recordsOf(lines: AsyncIterable<{ text: string; terminated: boolean; tooLong: boolean }>, reject: (text: string) => boolean): AsyncGenerator<Rec> {
  for await (const l of lines) {
    // A last line still being written, or one no record could be: not part of the record.
    if (!l.terminated || l.tooLong || !WANTED.test(l.text) || reject(l.text)) continue;
    let r: unknown;
    try {
      r = JSON.parse(l.text);
    } catch {
      continue;
    }
    if (r && typeof r === 'object' && typeof (r as Rec).type === 'string' && typeof (r as Rec).time === 'string') yield r as Rec;
  }
}

/** The pure join over audit records (also used by tests and the bench on generated records). */
export async function* rowsOf(records: AsyncIterable<Rec> | Iterable<Rec>, filter: ReportFilter): AsyncGenerator<AccessRow> {
  const waiting = new Map<string, string | undefined>(); // request id → reason
  const live = new Map<string, AccessRow>(); // issued, not final yet
  const queue: AccessRow[] = []; // issue order
  let head = 0;
  const isFinal = (r: AccessRow, now: number) => r.revokedAt !== undefined || r.until <= now;

  for await (const rec of records) {
    const id = str(rec.id);
    const now = Date.parse(rec.time);
    switch (rec.type) {
      case 'request':
        if (id && rec.status === 'pending') {
          if (waiting.size >= MAX_WAITING) waiting.delete(waiting.keys().next().value as string);
          waiting.set(id, str(rec.reason));
        }
        break;
      case 'reject':
      case 'expire':
        if (id) waiting.delete(id);
        break;
      case 'issue': {
        if (!id) break;
        const row = issueRow(rec, id, now, waiting.get(id));
        waiting.delete(id);
        if (!row) break;
        live.set(id, row);
        queue.push(row);
        break;
      }
      case 'revoke': {
        const row = id ? live.get(id) : undefined;
        if (row && row.revokedAt === undefined) {
          row.revokedAt = now;
          row.revokedBy = str(rec.by);
          row.revokeReason = str(rec.reason);
        }
        break;
      }
    }
    while (head < queue.length && isFinal(queue[head], now)) {
      const row = queue[head++];
      live.delete(row.id);
      if (matches(row, filter)) yield row;
    }
    if (head > 4096 && head * 2 > queue.length) {
      queue.splice(0, head);
      head = 0;
    }
    // Past `until` with nothing open: later records cannot change the report.
    if (filter.until !== undefined && now > filter.until && head === queue.length) return;
  }
  for (; head < queue.length; head++) if (matches(queue[head], filter)) yield queue[head];
}

function issueRow(rec: Rec, id: string, issuedAt: number, waitingReason: string | undefined): AccessRow | undefined {
  const user = str(rec.user);
  const target = str(rec.target);
  const validAfter = rec.validAfter;
  const validBefore = rec.validBefore;
  if (!user || !target || typeof validAfter !== 'number' || typeof validBefore !== 'number') return undefined;
  const list = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  return {
    id,
    user,
    target,
    account: str(rec.account),
    principals: list(rec.principals),
    task: str(rec.task) ?? '',
    reason: str(rec.reason) ?? waitingReason,
    ticket: str(rec.ticket),
    rule: str(rec.rule),
    serial: str(rec.serial) ?? '',
    from: validAfter * 1000,
    until: validBefore * 1000,
    issuedAt,
    approvedBy: list(rec.approvals),
  };
}

// ---------------------------------------------------------------------------------------------
// Filters from people (CLI flags, the web form)

/** '2026-11-01', '2026-11-01T12:00Z' (ISO 8601), or a duration ago: '7d', '12h'. */
export function parseWhen(value: string, field: string, now: number): number {
  const v = value.trim();
  const ago = tryParseDuration(v, { maxSeconds: 10 * 366 * 86_400 });
  if (ago.ok && /[a-z]$/i.test(v)) return now - ago.seconds * 1000;
  if (/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(v)) {
    const t = Date.parse(v.length === 10 ? `${v}T00:00:00Z` : v);
    if (Number.isFinite(t)) return t;
  }
  throw new JitError('invalid_field', `${field}: expected a date like 2026-11-01 or 2026-11-01T12:00Z, or a time ago like 7d or 12h; got "${v.slice(0, 40)}"`);
}

export interface RawFilter {
  since?: string;
  until?: string;
  user?: string;
  target?: string;
}

export function parseReportFilter(raw: RawFilter, now: number): ReportFilter {
  const f: ReportFilter = {};
  const nameOf = (v: string | undefined, field: string) => {
    if (v === undefined || v === '') return undefined;
    if (!NAME_RE.test(v)) throw new JitError('invalid_field', `${field}: must be 1-63 letters, digits, '.', '_' or '-'`);
    return v;
  };
  const user = nameOf(raw.user, 'user');
  const target = nameOf(raw.target, 'target');
  if (user) f.user = user;
  if (target) f.target = target;
  if (raw.since) f.since = parseWhen(raw.since, 'since', now);
  if (raw.until) f.until = parseWhen(raw.until, 'until', now);
  if (f.since !== undefined && f.until !== undefined && f.since > f.until) throw new JitError('invalid_field', 'since: must not be after until');
  return f;
}

// ---------------------------------------------------------------------------------------------
// Output formats

export const CSV_COLUMNS = [
  'id', 'user', 'target', 'account', 'principals', 'task', 'reason', 'ticket', 'rule', 'serial',
  'from', 'until', 'ended', 'issued_at', 'approved_by', 'revoked_at', 'revoked_by', 'revoke_reason',
] as const;

const iso = (ms: number | undefined) => (ms === undefined ? '' : new Date(ms).toISOString());

/** One row as the values of CSV_COLUMNS (also the table and JSON fields). */
export function rowFields(r: AccessRow): string[] {
  return [
    r.id, r.user, r.target, r.account ?? '', r.principals.join(' '), r.task, r.reason ?? '', r.ticket ?? '', r.rule ?? '', r.serial,
    iso(r.from), iso(r.until), iso(endOf(r)), iso(r.issuedAt), r.approvedBy.join(' '), iso(r.revokedAt), r.revokedBy ?? '', r.revokeReason ?? '',
  ];
}

/**
 * RFC 4180 quoting, and a leading ' before = + - @ tab or CR so a spreadsheet never runs a
 * requester's reason as a formula (CSV injection).
 */
export function csvCell(s: string): string {
  const safe = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export const csvLine = (cells: readonly string[]): string => cells.map(csvCell).join(',') + '\r\n';

export function jsonRow(r: AccessRow): Record<string, unknown> {
  return {
    id: r.id, user: r.user, target: r.target, account: r.account, principals: r.principals, task: r.task, reason: r.reason,
    ticket: r.ticket, rule: r.rule, serial: r.serial, from: iso(r.from), until: iso(r.until), ended: iso(endOf(r)),
    issuedAt: iso(r.issuedAt), approvedBy: r.approvedBy, revokedAt: r.revokedAt === undefined ? undefined : iso(r.revokedAt),
    revokedBy: r.revokedBy, revokeReason: r.revokeReason,
  };
}
