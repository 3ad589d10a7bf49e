/**
 * StateStore on PostgreSQL: every replica reads and writes the same rows, so nothing a replica
 * needs from another lives in its memory. Records are JSONB; the columns beside them are the
 * few fields the store filters on. Each method is one statement or one short transaction; the
 * KRL version moves in the same transaction as the revocation that changes the KRL.
 */
import { JitError } from '../../errors.js';
import type {
  AuditRecord,
  CertRevocation,
  KeyRevocation,
  PruneResult,
  RequestFilter,
  RequestRecord,
  RequestStatus,
  RevocationMark,
  RevocationSnapshot,
  RevokedRequest,
  StateStore,
  TokenRecord,
} from '../types.js';

import { inTransaction, query, type Pool, type PoolClient } from './pool.js';
import { grantFromIssue } from '../grant-index.js';

const STATUSES = new Set<RequestStatus>(['pending', 'issued', 'denied', 'expired', 'revoked']);
const TOKEN_HASH = /^[0-9a-f]{64}$/;

export interface PgStateOptions {
  clock?: () => Date;
  /** Seconds a finished request is kept after it ends (default 3600), as the embedded store. */
  requestGraceSec?: number;
  /** Seconds a revoked certificate stays in the KRL after its validBefore (default 300). */
  krlGraceSec?: number;
}

type Queryable = Pick<PoolClient, 'query'>;

function checkRecord(r: RequestRecord): void {
  if (typeof r.id !== 'string' || r.id === '') throw new JitError('internal', 'request needs an id');
  if (!STATUSES.has(r.status)) throw new JitError('internal', `unknown request status ${String(r.status)}`);
}

const UPSERT = `
INSERT INTO requests (id, user_name, target, status, created_at, expires_at, serial, valid_before, key_fingerprint, record)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (id) DO UPDATE SET user_name = EXCLUDED.user_name, target = EXCLUDED.target, status = EXCLUDED.status,
  created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at, serial = EXCLUDED.serial,
  valid_before = EXCLUDED.valid_before, key_fingerprint = EXCLUDED.key_fingerprint, record = EXCLUDED.record`;

function rowValues(r: RequestRecord): unknown[] {
  return [r.id, r.user, r.target, r.status, r.createdAt, r.expiresAt, r.cert?.serial ?? null, r.cert?.validBefore ?? null, r.keyFingerprint ?? null, JSON.stringify(r)];
}

export async function writeRequest(db: Queryable, r: RequestRecord): Promise<void> {
  await db.query(UPSERT, rowValues(r));
}

/**
 * The grant an `issue` audit record describes, written in the audit's own transaction: a
 * certificate never leaves without its grant row (limits, revocation by serial, KRL). An
 * approved request's row (pending) becomes issued; a row already past issued is left alone.
 */
export async function recordGrantsOf(db: Queryable, records: readonly AuditRecord[]): Promise<void> {
  const grants = records.flatMap((a) => (a.type === 'issue' ? (grantFromIssue(a) ?? []) : []));
  if (grants.length === 0) return;
  // One statement for the whole batch: this runs while the audit head row is locked.
  const rows = grants.map((g) => {
    const v = rowValues(g);
    return { id: v[0], user_name: v[1], target: v[2], status: v[3], created_at: v[4], expires_at: v[5], serial: v[6], valid_before: v[7], key_fingerprint: v[8], record: g };
  });
  await db.query({
    name: 'jit_record_grants',
    text: `INSERT INTO requests (id, user_name, target, status, created_at, expires_at, serial, valid_before, key_fingerprint, record)
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(id text, user_name text, target text, status text, created_at bigint,
         expires_at bigint, serial text, valid_before bigint, key_fingerprint text, record jsonb)
       ON CONFLICT (id) DO UPDATE SET status = 'issued', serial = EXCLUDED.serial, valid_before = EXCLUDED.valid_before,
         key_fingerprint = EXCLUDED.key_fingerprint,
         record = requests.record || jsonb_build_object('status', 'issued', 'cert', EXCLUDED.record->'cert', 'keyFingerprint', EXCLUDED.record->'keyFingerprint')
       WHERE requests.status = 'pending'`,
    values: [JSON.stringify(rows)],
  });
}

/** Steps the KRL version as the embedded store does: max(version + steps, now in seconds). */
async function bumpKrl(db: Queryable, steps: number, nowSec: number): Promise<void> {
  await db.query(`UPDATE jit_counters SET value = GREATEST(value + $1, $2) WHERE name = 'krl'`, [steps, nowSec]);
}

export class PgState implements StateStore {
  private readonly clock: () => Date;
  private readonly requestGraceSec: number;
  private readonly krlGraceSec: number;

  constructor(
    private readonly pool: Pool,
    opts: PgStateOptions = {},
  ) {
    this.clock = opts.clock ?? (() => new Date());
    this.requestGraceSec = opts.requestGraceSec ?? 3600;
    this.krlGraceSec = opts.krlGraceSec ?? 300;
  }

  private nowSec(): number {
    return Math.floor(this.clock().getTime() / 1000);
  }

  async putRequest(r: RequestRecord): Promise<void> {
    checkRecord(r);
    await query(this.pool, 'store request', UPSERT, rowValues(r));
  }

  /** Nothing to do: the `issue` audit record's transaction already wrote the grant (recordGrantsOf). */
  recordIssued(r: RequestRecord): void {
    if (r.status !== 'issued' && r.status !== 'revoked') throw new JitError('internal', 'recordIssued takes an issued request');
  }

  async getRequest(id: string): Promise<RequestRecord | undefined> {
    const { rows } = await query<{ record: RequestRecord }>(this.pool, 'read request', 'SELECT record FROM requests WHERE id = $1', [id]);
    return rows[0]?.record;
  }

  async listRequests(filter: RequestFilter = {}): Promise<RequestRecord[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    const add = (sql: string, v: unknown) => {
      values.push(v);
      where.push(sql.replace('?', `$${values.length}`));
    };
    if (filter.user !== undefined) add('user_name = ?', filter.user);
    if (filter.target !== undefined) add('target = ?', filter.target);
    if (filter.status !== undefined) add('status = ANY(?)', typeof filter.status === 'string' ? [filter.status] : [...filter.status]);
    if (filter.serial !== undefined) add('serial = ?', filter.serial);
    if (filter.keyFingerprint !== undefined) add('key_fingerprint = ?', filter.keyFingerprint);
    const sql = `SELECT record FROM requests ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_at DESC`;
    const { rows } = await query<{ record: RequestRecord }>(this.pool, 'list requests', sql, values);
    return rows.map((r) => r.record);
  }

  async updateRequest(id: string, mutate: (r: RequestRecord) => void): Promise<RequestRecord> {
    return inTransaction(this.pool, 'update request', async (tx) => {
      const { rows } = await tx.query<{ record: RequestRecord }>('SELECT record FROM requests WHERE id = $1 FOR UPDATE', [id]);
      if (!rows[0]) throw new JitError('not_found', `no request ${id}`);
      const next = rows[0].record;
      mutate(next);
      if (next.id !== id) throw new JitError('internal', 'updateRequest may not change the id');
      checkRecord(next);
      await writeRequest(tx, next);
      return next;
    });
  }

  async countActiveGrants(user: string, nowSec: number): Promise<number> {
    const { rows } = await query<{ n: string }>(
      this.pool,
      'count grants',
      { name: 'jit_count_grants', text: `SELECT count(*) AS n FROM requests WHERE user_name = $1 AND status = 'issued' AND valid_before > $2` },
      [user, nowSec],
    );
    return Number(rows[0].n);
  }

  async countPending(user: string, nowMs: number): Promise<number> {
    const { rows } = await query<{ n: string }>(
      this.pool,
      'count pending',
      `SELECT count(*) AS n FROM requests WHERE user_name = $1 AND status = 'pending' AND expires_at > $2`,
      [user, nowMs],
    );
    return Number(rows[0].n);
  }

  async addRevocation(rev: CertRevocation): Promise<boolean> {
    if (!/^\d+$/.test(rev.serial)) throw new JitError('internal', `revocation serial must be a decimal string, got ${rev.serial}`);
    return inTransaction(this.pool, 'revoke certificate', async (tx) => {
      const r = await tx.query(
        'INSERT INTO cert_revocations (ca_fingerprint, serial, valid_before, record) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING',
        [rev.caFingerprint, rev.serial, rev.validBefore, JSON.stringify(rev)],
      );
      if (r.rowCount !== 1) return false;
      await bumpKrl(tx, 1, this.nowSec());
      return true;
    });
  }

  async addKeyRevocation(rev: KeyRevocation): Promise<boolean> {
    return inTransaction(this.pool, 'revoke key', async (tx) => {
      const r = await tx.query('INSERT INTO key_revocations (fingerprint, record) VALUES ($1, $2) ON CONFLICT DO NOTHING', [rev.fingerprint, JSON.stringify(rev)]);
      if (r.rowCount !== 1) return false;
      await bumpKrl(tx, 1, this.nowSec());
      return true;
    });
  }

  async removeKeyRevocation(fingerprint: string): Promise<boolean> {
    return inTransaction(this.pool, 'lift key revocation', async (tx) => {
      const r = await tx.query('DELETE FROM key_revocations WHERE fingerprint = $1', [fingerprint]);
      if (r.rowCount !== 1) return false;
      await bumpKrl(tx, 1, this.nowSec());
      return true;
    });
  }

  async keyRevocation(fingerprint: string): Promise<KeyRevocation | undefined> {
    const { rows } = await query<{ record: KeyRevocation }>(this.pool, 'read key revocation', { name: 'jit_key_revocation', text: 'SELECT record FROM key_revocations WHERE fingerprint = $1' }, [fingerprint]);
    return rows[0]?.record;
  }

  async revokeGrants(ids: readonly string[], mark: RevocationMark): Promise<RequestRecord[]> {
    if (ids.length === 0) return [];
    return inTransaction(this.pool, 'revoke grants', async (tx) => {
      // Locked in id order: two batches over the same grants cannot deadlock.
      const { rows } = await tx.query<{ record: RequestRecord }>(
        `SELECT record FROM requests WHERE id = ANY($1) AND status IN ('issued', 'pending') ORDER BY id FOR UPDATE`,
        [[...new Set(ids)]],
      );
      const changed: RequestRecord[] = [];
      let certs = 0;
      for (const { record } of rows) {
        if (record.status !== 'issued' && record.status !== 'pending') continue; // the query's own filter, for the type
        const rec: RevokedRequest = { ...record, status: 'revoked', revokedAt: mark.at, revokedBy: mark.by };
        await writeRequest(tx, rec);
        if (rec.cert) {
          const c = rec.cert;
          const rev: CertRevocation = { serial: c.serial, caFingerprint: c.caFingerprint, validBefore: c.validBefore, revokedAt: mark.at, by: mark.by, reason: mark.reason };
          await tx.query(
            'INSERT INTO cert_revocations (ca_fingerprint, serial, valid_before, record) VALUES ($1, $2, $3, $4) ON CONFLICT (ca_fingerprint, serial) DO UPDATE SET record = EXCLUDED.record',
            [c.caFingerprint, c.serial, c.validBefore, JSON.stringify(JSON.parse(JSON.stringify(rev)))],
          );
          certs++;
        }
        changed.push(rec);
      }
      // One step per certificate, as the embedded store counts them (the audit replay's floor).
      if (certs > 0) await bumpKrl(tx, certs, this.nowSec());
      return changed;
    });
  }

  async listRevocations(nowSec: number): Promise<RevocationSnapshot> {
    // One snapshot: the version and the lists it describes come from the same moment.
    return inTransaction(this.pool, 'read revocations', async (tx) => {
      await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const v = await tx.query<{ value: string }>(`SELECT value FROM jit_counters WHERE name = 'krl'`);
      const c = await tx.query<{ record: CertRevocation }>('SELECT record FROM cert_revocations WHERE valid_before > $1 ORDER BY ca_fingerprint, serial', [nowSec - this.krlGraceSec]);
      const k = await tx.query<{ record: KeyRevocation }>('SELECT record FROM key_revocations ORDER BY fingerprint');
      return { krlVersion: Number(v.rows[0].value), certificates: c.rows.map((r) => r.record), keys: k.rows.map((r) => r.record) };
    });
  }

  async krlVersion(): Promise<number> {
    const { rows } = await query<{ value: string }>(this.pool, 'read KRL version', { name: 'jit_krl_version', text: `SELECT value FROM jit_counters WHERE name = 'krl'` });
    return Number(rows[0].value);
  }

  async putToken(hash: string, rec: TokenRecord): Promise<void> {
    if (!TOKEN_HASH.test(hash)) throw new JitError('internal', 'putToken takes the sha256 hex of a token, never the token');
    await query(
      this.pool,
      'store token',
      'INSERT INTO session_tokens (hash, user_name, expires_at, record) VALUES ($1, $2, $3, $4) ON CONFLICT (hash) DO UPDATE SET user_name = EXCLUDED.user_name, expires_at = EXCLUDED.expires_at, record = EXCLUDED.record',
      [hash, rec.user, rec.expiresAt, JSON.stringify(rec)],
    );
  }

  async getToken(hash: string, nowMs: number): Promise<TokenRecord | undefined> {
    const { rows } = await query<{ record: TokenRecord }>(this.pool, 'read token', 'SELECT record FROM session_tokens WHERE hash = $1 AND expires_at > $2', [hash, nowMs]);
    return rows[0]?.record;
  }

  async deleteToken(hash: string): Promise<void> {
    await query(this.pool, 'delete token', 'DELETE FROM session_tokens WHERE hash = $1', [hash]);
  }

  /**
   * As the embedded store (see state.ts), but each expiry is claimed by one UPDATE, so when
   * several replicas prune at once every expired request is reported (and audited) once.
   */
  async prune(nowSec: number): Promise<PruneResult> {
    const nowMs = nowSec * 1000;
    return inTransaction(this.pool, 'prune', async (tx) => {
      const expired = await tx.query<{ record: RequestRecord }>(
        `UPDATE requests SET status = 'expired', record = jsonb_set(record, '{status}', '"expired"')
         WHERE status = 'pending' AND expires_at <= $1 RETURNING record`,
        [nowMs],
      );
      const grace = this.requestGraceSec;
      const removed = await tx.query(
        `DELETE FROM requests WHERE
           (status IN ('issued', 'revoked') AND valid_before IS NOT NULL AND valid_before + $1 <= $2)
           OR (status IN ('denied', 'expired') AND expires_at / 1000 + $1 <= $2)
           OR (status = 'revoked' AND valid_before IS NULL AND expires_at / 1000 + $1 <= $2)`,
        [grace, nowSec],
      );
      const revs = await tx.query('DELETE FROM cert_revocations WHERE valid_before <= $1', [nowSec - this.krlGraceSec]);
      if ((revs.rowCount ?? 0) > 0) await bumpKrl(tx, 1, nowSec);
      const toks = await tx.query('DELETE FROM session_tokens WHERE expires_at <= $1', [nowMs]);
      await tx.query('DELETE FROM used_once WHERE expires_at <= $1', [nowMs]);
      return {
        expired: expired.rows.map((r) => r.record),
        removedRequests: removed.rowCount ?? 0,
        removedRevocations: revs.rowCount ?? 0,
        removedTokens: toks.rowCount ?? 0,
      };
    });
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {}
}
