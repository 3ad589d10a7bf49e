/**
 * `jit-sshd store migrate --to postgres://…`: copies an embedded data dir into an empty
 * database in one transaction. The audit lines are copied byte for byte (same chain, same
 * hashes, so signed checkpoints still match), live requests and grants, revocations and the KRL
 * version carry over, and the serial counter starts above every serial the data dir used.
 * The data dir is opened as the daemon would (its lock held: the daemon must be stopped).
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { JitError } from '../../errors.js';
import { openStore, STORE_FILES } from '../index.js';
import { readLines } from '../audit.js';
import { serialFile } from '../serials.js';
import type { AuditRecord, IssuedRequest, RequestRecord } from '../types.js';
import { auditLines } from './audit.js';
import { migrate } from './migrations.js';
import { createPool, inTransaction } from './pool.js';
import { writeRequest } from './state.js';
import { grantFromIssue } from '../grant-index.js';
import { verifyAuditLines } from '../audit.js';

export interface ImportResult {
  auditRecords: number;
  head: { seq: number; hash: string };
  requests: number;
  certRevocations: number;
  keyRevocations: number;
  krlVersion: number;
  serialFloor: string;
}

const SERIAL = /^\d{1,19}$/;
const BATCH = 1000;

export async function importEmbedded(dataDir: string, url: string, opts: { clock?: () => Date } = {}): Promise<ImportResult> {
  const clock = opts.clock ?? (() => new Date());
  const nowSec = Math.floor(clock().getTime() / 1000);
  const store = await openStore(dataDir, { clock });
  const pool = createPool(url, { max: 2 });
  try {
    await migrate(pool);
    const requests = await store.state.listRequests();
    // Grants kept only as compact index entries lack key and certificate: their issue records have them.
    const compact = new Set(requests.filter((r) => r.cert && !r.publicKey).map((r) => r.id));
    const fromAudit = new Map<string, IssuedRequest>();
    const revocations = await store.state.listRevocations(nowSec);
    const reserved = await serialFile(join(dataDir, STORE_FILES.serial)).load();

    const result = await inTransaction(pool, 'import', async (tx) => {
      const empty = await tx.query<{ n: string }>('SELECT (SELECT count(*) FROM audit_records) + (SELECT count(*) FROM requests) AS n');
      if (Number(empty.rows[0].n) > 0) throw new JitError('conflict', 'the target database already holds jit-ssh data; migrate into an empty database');
      let seqs: number[] = [];
      let lines: string[] = [];
      let count = 0;
      let maxSerial = reserved;
      const flush = async () => {
        if (seqs.length === 0) return;
        await tx.query('INSERT INTO audit_records (seq, line) SELECT * FROM unnest($1::bigint[], $2::text[])', [seqs, lines]);
        seqs = [];
        lines = [];
      };
      const fh = await open(join(dataDir, STORE_FILES.audit), 'r').catch(() => undefined);
      if (fh) {
        try {
          for await (const l of readLines(fh)) {
            if (!l.terminated || l.tooLong) break; // openStore already verified the chain up to here
            const rec = JSON.parse(l.text) as AuditRecord;
            if (rec.type === 'issue') {
              if (typeof rec.serial === 'string' && SERIAL.test(rec.serial) && BigInt(rec.serial) > maxSerial) maxSerial = BigInt(rec.serial);
              if (typeof rec.id === 'string' && compact.has(rec.id)) {
                const g = grantFromIssue(rec);
                if (g) fromAudit.set(rec.id, g);
              }
            }
            seqs.push(rec.seq);
            lines.push(l.text);
            count++;
            if (seqs.length >= BATCH) await flush();
          }
        } finally {
          await fh.close();
        }
      }
      await flush();
      const head = store.audit.head();
      if (count !== head.seq) throw new JitError('internal', `copied ${count} audit records but the log's head is seq ${head.seq}`);
      await tx.query('UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1', [head.seq, head.hash]);
      for (const r of requests) {
        const full = fromAudit.get(r.id);
        // A compact grant is issued or revoked: its issue record gives the rest.
        const rec: RequestRecord = !full ? r : r.status === 'revoked' ? { ...full, status: 'revoked', revokedAt: r.revokedAt, revokedBy: r.revokedBy } : full;
        await writeRequest(tx, rec);
      }
      for (const c of revocations.certificates) {
        await tx.query('INSERT INTO cert_revocations (ca_fingerprint, serial, valid_before, record) VALUES ($1, $2, $3, $4)', [c.caFingerprint, c.serial, c.validBefore, JSON.stringify(c)]);
      }
      for (const k of revocations.keys) {
        await tx.query('INSERT INTO key_revocations (fingerprint, record) VALUES ($1, $2)', [k.fingerprint, JSON.stringify(k)]);
      }
      await tx.query(`UPDATE jit_counters SET value = $1 WHERE name = 'krl'`, [revocations.krlVersion]);
      await tx.query(`UPDATE jit_counters SET value = $1::bigint WHERE name = 'serial'`, [maxSerial.toString()]);
      return {
        auditRecords: count,
        head,
        requests: requests.length,
        certRevocations: revocations.certificates.length,
        keyRevocations: revocations.keys.length,
        krlVersion: revocations.krlVersion,
        serialFloor: maxSerial.toString(),
      };
    });
    // Read back what was committed: the chain in the database must verify to the same head.
    const v = await verifyAuditLines(auditLines(pool));
    if (!v.ok || v.lastHash !== result.head.hash || v.lastSeq !== result.head.seq) {
      throw new JitError('internal', `the audit chain read back from the database does not verify to seq ${result.head.seq}`);
    }
    return result;
  } finally {
    await pool.end().catch(() => undefined);
    await store.close();
  }
}
