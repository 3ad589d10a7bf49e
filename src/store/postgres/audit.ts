/**
 * The audit chain in PostgreSQL: one hash chain however many replicas append. Each batch locks
 * the single head row (SELECT … FOR UPDATE), chains its records onto it, inserts them and moves
 * the head, in one transaction: replicas take turns, and within a replica every append that
 * arrives while a batch commits joins the next one (group commit), so a busy replica pays one
 * round trip per batch rather than per certificate. append() resolves only after COMMIT.
 */
import { createHash } from 'node:crypto';
import { JitError } from '../../errors.js';
import { canonicalJson, GENESIS_HASH, normalizeEvent, type AuditHead, type OpenedAuditLog } from '../audit.js';
import type { AuditEvent, AuditRecord } from '../types.js';
import { inTransaction, query, storeError, type Pool, type PoolClient } from './pool.js';

/** Records per transaction at most (bounds statement size; the rest waits for the next batch). */
const MAX_BATCH = 512;
const MAX_TAIL = 10_000;

/** Work that must commit with the records that caused it (e.g. the grant of an `issue`). */
export type AuditSideEffects = (tx: PoolClient, records: readonly AuditRecord[]) => Promise<void>;

interface Pending {
  event: Record<string, unknown>;
  resolve: (r: AuditRecord) => void;
  reject: (e: unknown) => void;
}

/** The exact line the embedded log would write for this record: the chain is the same. */
export function chainRecords(head: AuditHead, time: string, events: readonly Record<string, unknown>[]): { records: AuditRecord[]; lines: string[] } {
  let { seq, hash } = head;
  const records: AuditRecord[] = [];
  const lines: string[] = [];
  for (const event of events) {
    seq++;
    const body = { seq, time, ...event, prevHash: hash };
    const canonical = canonicalJson(body);
    hash = createHash('sha256').update(hash + canonical).digest('hex');
    records.push({ ...body, hash } as AuditRecord);
    lines.push(`${canonical.slice(0, -1)},"hash":"${hash}"}`);
  }
  return { records, lines };
}

export async function readHead(pool: Pool): Promise<AuditHead> {
  const { rows } = await query<{ seq: string; hash: string }>(pool, 'audit head', 'SELECT seq, hash FROM audit_head WHERE id = 1');
  return rows[0] ? { seq: Number(rows[0].seq), hash: rows[0].hash } : { seq: 0, hash: GENESIS_HASH };
}

class PgAuditLog implements OpenedAuditLog {
  readonly warnings: string[] = [];
  private pending: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;
  private readonly listeners: ((head: AuditHead, records: readonly AuditRecord[]) => void)[] = [];

  constructor(
    private readonly pool: Pool,
    private readonly clock: () => Date,
    private last: AuditHead,
    private readonly sideEffects: AuditSideEffects | undefined,
  ) {}

  /** The head this replica last saw (its own commits or its last read); others may be ahead. */
  head(): AuditHead {
    return { ...this.last };
  }

  onCommit(fn: (head: AuditHead, records: readonly AuditRecord[]) => void): void {
    this.listeners.push(fn);
  }

  append(event: AuditEvent): Promise<AuditRecord> {
    if (this.closed) return Promise.reject(new JitError('unavailable', 'audit log is closed'));
    let data: Record<string, unknown>;
    try {
      data = normalizeEvent(event);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<AuditRecord>((resolve, reject) => {
      this.pending.push({ event: data, resolve, reject });
      // setImmediate: every append of this turn of the event loop joins the batch.
      this.flushing ??= new Promise<void>((done) => setImmediate(() => void this.flushLoop().finally(done)));
    });
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, MAX_BATCH);
        try {
          const records = await this.commit(batch.map((p) => p.event));
          batch.forEach((p, i) => p.resolve(records[i]));
        } catch (e) {
          const err = storeError(e, 'audit append');
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private async commit(events: Record<string, unknown>[]): Promise<AuditRecord[]> {
    const out = await inTransaction(this.pool, 'audit append', async (tx) => {
      const { rows } = await tx.query<{ seq: string; hash: string }>({ name: 'jit_lock_head', text: 'SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE' });
      const head = { seq: Number(rows[0].seq), hash: rows[0].hash };
      const { records, lines } = chainRecords(head, this.clock().toISOString(), events);
      const last = records[records.length - 1];
      // Records and the new head in one statement: the head row stays locked for few round trips.
      await tx.query({
        name: 'jit_append',
        text: `WITH ins AS (INSERT INTO audit_records (seq, line) SELECT * FROM unnest($1::bigint[], $2::text[]))
               UPDATE audit_head SET seq = $3, hash = $4 WHERE id = 1`,
        values: [records.map((r) => r.seq), lines, last.seq, last.hash],
      });
      await this.sideEffects?.(tx, records);
      return records;
    });
    const last = out[out.length - 1];
    if (last.seq > this.last.seq) this.last = { seq: last.seq, hash: last.hash };
    for (const fn of this.listeners) fn(this.head(), out);
    return out;
  }

  async tail(afterSeq: number, limit: number): Promise<AuditRecord[]> {
    const n = Math.max(0, Math.min(limit, MAX_TAIL));
    const { rows } = await query<{ line: string }>(this.pool, 'audit read', 'SELECT line FROM audit_records WHERE seq > $1 ORDER BY seq LIMIT $2', [afterSeq, n]);
    return rows.map((r) => JSON.parse(r.line) as AuditRecord);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.flushing;
  }
}

export async function openPgAuditLog(pool: Pool, opts: { clock?: () => Date; sideEffects?: AuditSideEffects } = {}): Promise<OpenedAuditLog> {
  return new PgAuditLog(pool, opts.clock ?? (() => new Date()), await readHead(pool), opts.sideEffects);
}

/** Every line of the chain in order, a page at a time (memory does not grow with the log). */
export async function* auditLines(pool: Pool, page = 5000): AsyncGenerator<{ text: string; tooLong: false; terminated: true }> {
  let after = 0;
  for (;;) {
    const { rows } = await query<{ seq: string; line: string }>(pool, 'audit read', 'SELECT seq, line FROM audit_records WHERE seq > $1 ORDER BY seq LIMIT $2', [after, page]);
    for (const r of rows) yield { text: r.line, tooLong: false, terminated: true };
    if (rows.length < page) return;
    after = Number(rows[rows.length - 1].seq);
  }
}
