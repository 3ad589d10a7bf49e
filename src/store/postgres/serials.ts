/**
 * Certificate serials shared by every replica: each reserves a block from the 'serial' counter
 * row (one UPDATE … RETURNING), then hands serials out of it from memory. A block a replica did
 * not finish (it died) is skipped, never reissued. The audit transaction raises the counter to
 * the highest serial it records (raiseSerialFloor), so the counter is never below the audit.
 */
import { JitError } from '../../errors.js';
import type { SerialAllocator } from '../serials.js';
import type { AuditRecord } from '../types.js';
import { query, type Pool, type PoolClient } from './pool.js';

const MAX_SERIAL = 2n ** 63n - 1n;
const SERIAL = /^\d{1,19}$/;

export async function raiseSerialFloor(db: Pick<PoolClient, 'query'>, records: readonly AuditRecord[]): Promise<void> {
  let max = 0n;
  for (const r of records) {
    if (r.type === 'issue' && typeof r.serial === 'string' && SERIAL.test(r.serial) && BigInt(r.serial) > max) max = BigInt(r.serial);
  }
  if (max > 0n) await db.query(`UPDATE jit_counters SET value = GREATEST(value, $1::bigint) WHERE name = 'serial'`, [max.toString()]);
}

export function pgSerialAllocator(pool: Pool, opts: { blockSize?: number; serialStart?: bigint } = {}): SerialAllocator {
  const block = BigInt(opts.blockSize ?? 100);
  const start = opts.serialStart ?? 1n;
  if (block < 1n) throw new JitError('invalid_config', 'serial block size must be ≥ 1');
  let next = 1n;
  let end = 0n;
  let reserving: Promise<void> | undefined;
  const reserve = async () => {
    const { rows } = await query<{ value: string }>(
      pool,
      'reserve serials',
      `UPDATE jit_counters SET value = GREATEST(value, $2::bigint) + $1::bigint WHERE name = 'serial' RETURNING value`,
      [block.toString(), (start - 1n).toString()],
    );
    const upTo = BigInt(rows[0].value);
    if (upTo > MAX_SERIAL) throw new JitError('store_unavailable', 'certificate serials exhausted');
    next = upTo - block + 1n;
    end = upTo;
  };
  return {
    async next() {
      while (next > end) {
        reserving ??= reserve().finally(() => {
          reserving = undefined;
        });
        await reserving;
      }
      return next++;
    },
  };
}
