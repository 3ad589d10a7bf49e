/** jit-sshd audit verify and audit report. */
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { JitError } from '../../errors.js';
import { CHECKPOINT_FILES, parseCheckpointLine, readCheckpointPublicKey, type Checkpoint } from '../../store/audit-checkpoints.js';
import { readLines } from '../../store/audit.js';
import { STORE_FILES } from '../../store/index.js';
import { verifyAnchoredAudit, type Anchor } from '../../store/audit-verify.js';
import { errorCode } from '../../files.js';
import { accessReport, csvLine, CSV_COLUMNS, endOf, jsonRow, parseReportFilter, rowFields, type AccessRow } from '../../service/report.js';
import { adminConfig, print, type CommonArgs } from './settings.js';
import { databaseUrl } from '../../store-engine.js';

export interface VerifyArgs extends CommonArgs {
  /** SEQ:HASH heads noted off the box. */
  'expect-head'?: string[];
  /** Files of checkpoint lines kept off the box (syslog extracts, copies of the checkpoint file). */
  checkpoint?: string[];
  /** The checkpoint public key (line or file) kept off the box; default: the data dir's. */
  'checkpoint-key'?: string;
}

/** Most checkpoint lines read from one --checkpoint file (an operator's copy, held in memory). */
const MAX_EXTERNAL = 100_000;

export function parseExpectHead(s: string): Anchor {
  const m = /^(\d{1,15}):([0-9a-f]{64})$/.exec(s.trim());
  if (!m || Number(m[1]) < 1) throw new JitError('bad_request', `--expect-head: expected SEQ:HASH (seq ≥ 1, 64 lowercase hex digits), got "${s.slice(0, 100)}"`);
  return { seq: Number(m[1]), hash: m[2], source: `--expect-head ${m[1]}` };
}

/** The checkpoints in a file of lines (raw checkpoint lines, daemon log or syslog lines). */
async function readExternal(file: string): Promise<{ checkpoint: Checkpoint; source: string }[]> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    throw new JitError('not_found', `--checkpoint: cannot read ${file}: ${errorCode(e)}`);
  }
  const out: { checkpoint: Checkpoint; source: string }[] = [];
  try {
    let n = 0;
    for await (const l of readLines(fh)) {
      n++;
      const c = l.tooLong ? undefined : parseCheckpointLine(l.text);
      if (!c) continue; // other syslog lines
      if (out.length >= MAX_EXTERNAL) throw new JitError('bad_request', `--checkpoint: ${file} holds more than ${MAX_EXTERNAL} checkpoints; pass the latest ones`);
      out.push({ checkpoint: c, source: `${file}:${n}` });
    }
  } finally {
    await fh.close();
  }
  if (out.length === 0) throw new JitError('bad_request', `--checkpoint: ${file} holds no audit checkpoint line`);
  return out;
}

export async function verify(a: VerifyArgs): Promise<void> {
  const c = adminConfig(a);
  const heads = (a['expect-head'] ?? []).map(parseExpectHead);
  const external = (await Promise.all((a.checkpoint ?? []).map(readExternal))).flat();
  const pubFile = join(c.dataDir, CHECKPOINT_FILES.pub);
  const keySource = a['checkpoint-key'] ?? (existsSync(pubFile) ? pubFile : undefined);
  const publicKey = keySource === undefined ? undefined : readCheckpointPublicKey(keySource);
  // With PostgreSQL the chain is read from the database; checkpoints still come from the data dir.
  const db = c.store.type === 'postgres' ? await import('../../store/postgres/admin.js') : undefined;
  const pool = db?.adminPool(databaseUrl(c));
  let r;
  try {
    r = await verifyAnchoredAudit({
      auditFile: join(c.dataDir, STORE_FILES.audit),
      ...(pool && db ? { auditLines: db.auditLines(pool) } : {}),
      checkpointFile: join(c.dataDir, CHECKPOINT_FILES.log),
      publicKey,
      external,
      heads,
    });
  } finally {
    await pool?.end();
  }
  if (!r.ok) {
    throw new JitError('conflict', `audit chain broken: ${r.problem}.`, { details: r });
  }
  const anchored = r.latest
    ? `; anchored by ${r.checkpoints} signed checkpoint(s) and ${r.external} outside anchor(s), the latest at seq ${r.latest.seq} (${r.latest.source})`
    : '; NOT anchored: no checkpoint yet, so records cut off the end would go unnoticed';
  print(a, `audit chain ok: ${r.records} records, last seq ${r.lastSeq}, head ${r.lastSeq}:${r.lastHash}${anchored}`, r);
}

export interface ReportArgs extends CommonArgs {
  since?: string;
  until?: string;
  user?: string;
  target?: string;
  format?: 'table' | 'csv' | 'json';
}

const minute = (ms: number) => new Date(ms).toISOString().slice(0, 16).replace('T', ' ');

/** One fixed-width line per grant: the report streams, so widths cannot depend on the data. */
function tableLine(r: AccessRow): string {
  const cut = (s: string, n: number) => (s.length > n ? s.slice(0, n - 1) + '…' : s.padEnd(n));
  const revoked = r.revokedAt !== undefined ? `revoked by ${r.revokedBy ?? '?'}${r.revokeReason ? `: ${r.revokeReason}` : ''}` : '';
  return [
    minute(r.from), minute(endOf(r)), cut(r.user, 12), cut(r.target, 14), cut(r.principals.join(','), 14), cut(r.task, 14),
    cut(r.ticket ?? '', 10), cut(r.approvedBy.join(',') || 'auto', 14), [r.reason ?? '', revoked].filter(Boolean).join(' | ').replace(/[\r\n\t]+/g, ' '),
  ].join('  ') + '\n';
}

const TABLE_HEADER = ['FROM (UTC)      ', 'UNTIL (UTC)     ', 'USER        ', 'TARGET        ', 'PRINCIPALS    ', 'TASK          ', 'TICKET    ', 'APPROVED BY   ', 'REASON | REVOKED'].join('  ') + '\n';

/** Writes with back-pressure: the report streams from the log, and so does the output. */
async function out(text: string): Promise<void> {
  if (!process.stdout.write(text)) await new Promise((r) => process.stdout.once('drain', r));
}

export async function report(a: ReportArgs): Promise<void> {
  const c = adminConfig(a);
  const filter = parseReportFilter({ since: a.since, until: a.until, user: a.user, target: a.target }, Date.now());
  const format = a.format ?? (a.json ? 'json' : 'table');
  if (format === 'csv') await out(csvLine(CSV_COLUMNS));
  if (format === 'table') await out(TABLE_HEADER);
  for await (const row of accessReport(join(c.dataDir, 'audit.jsonl'), filter)) {
    if (format === 'csv') await out(csvLine(rowFields(row)));
    else if (format === 'json') await out(JSON.stringify(jsonRow(row)) + '\n');
    else await out(tableLine(row));
  }
}
