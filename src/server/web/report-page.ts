/**
 * The report page's work: stream the audit log through the filter, keep the first
 * REPORT_PAGE_ROWS grants, draw a timeline per target. Separate from the route so the bench
 * measures exactly what a request costs the server.
 */
import { isJitError } from '../../errors.js';
import { accessReport, endOf, type AccessRow, type RawFilter, type ReportFilter } from '../../service/report.js';
import type { Html } from './html.js';
import { reportPage } from './pages.js';
import { timelineSvg } from './timeline.js';

/** Rows the report page draws (the CSV download has them all). */
export const REPORT_PAGE_ROWS = 500;

/** The filter fields of a query string, trimmed and bounded. */
export function rawFilter(query: Record<string, unknown>): RawFilter {
  const raw: RawFilter = {};
  for (const k of ['user', 'target', 'since', 'until'] as const) {
    const v = query[k];
    if (typeof v === 'string' && v.trim() !== '') raw[k] = v.trim().slice(0, 100);
  }
  return raw;
}

export async function renderReport(auditFile: string, parse: (query: Record<string, unknown>) => ReportFilter, query: Record<string, unknown>): Promise<Html> {
  const raw = rawFilter(query);
  const rows: AccessRow[] = [];
  let truncated = false;
  let error: string | undefined;
  try {
    const filter = parse(query);
    for await (const row of accessReport(auditFile, filter)) {
      if (rows.length >= REPORT_PAGE_ROWS) {
        truncated = true;
        break;
      }
      rows.push(row);
    }
  } catch (e) {
    if (!isJitError(e) || e.code !== 'invalid_field') throw e;
    error = e.message; // a bad filter: show the form again with the message
  }
  const byTarget = new Map<string, AccessRow[]>();
  for (const row of rows) {
    const list = byTarget.get(row.target);
    if (list) list.push(row);
    else byTarget.set(row.target, [row]);
  }
  let from = Infinity;
  let to = -Infinity;
  for (const row of rows) {
    from = Math.min(from, row.from);
    to = Math.max(to, endOf(row));
  }
  const timelines = [...byTarget].map(([target, rs]) => timelineSvg(target, rs, { from, to }));
  const csvHref = `/ui/report.csv?${new URLSearchParams(raw as Record<string, string>).toString()}`;
  return reportPage(raw, rows, timelines, { truncated, csvHref, error });
}
