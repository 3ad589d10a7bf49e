/** What admin commands need from the database: a small pool and the chain's lines. */
import { createPool, storeError, type Pool } from './pool.js';

export { auditLines } from './audit.js';
export { importEmbedded } from './import-embedded.js';
export { publishKeyring, pullKeyring } from './keyring.js';

export function adminPool(url: string): Pool {
  return createPool(url, { max: 2, connectTimeoutMs: 5000 });
}

/** The latest validBefore of a certificate this CA key signed, from the audit chain (for `ca retire`). */
export async function lastValidBeforeInDatabase(url: string, fingerprint: string): Promise<number> {
  const pool = adminPool(url);
  try {
    const { rows } = await pool.query<{ vb: string | null }>(
      `SELECT max((line::jsonb->>'validBefore')::bigint) AS vb FROM audit_records
       WHERE line LIKE '%"type":"issue"%' AND line::jsonb->>'ca' = $1`,
      [fingerprint],
    );
    return Number(rows[0]?.vb ?? 0);
  } catch (e) {
    throw storeError(e, 'read the audit chain');
  } finally {
    await pool.end();
  }
}
