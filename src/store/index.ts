/**
 * The data dir: one lock, one audit log (the record), one state file (a cache of live state),
 * one serial reservation. Layout:
 *   <dataDir>/jit-sshd.lock  audit.jsonl  state.json (+ state.journal)  serial
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { openAuditLog, type AuditFileOps, type OpenedAuditLog } from './audit.js';
import { checkDataDirTrust } from './data-dir.js';
import { acquireDataDirLock, LOCK_FILE } from './lock.js';
import { openSerialAllocator, type SerialAllocator } from './serials.js';
import { KRL_GRACE_SEC, openState, type OpenedState } from './state.js';
import { auditReplay } from './replay.js';
import { boundedAudit } from './bounded-audit.js';

export * from './types.js';
export { canonicalJson, verifyAuditFile, type VerifyResult, type ChainBreak } from './audit.js';
export type { SerialAllocator } from './serials.js';

export const STORE_FILES = { lock: LOCK_FILE, audit: 'audit.jsonl', state: 'state.json', serial: 'serial' } as const;

export interface StoreOptions {
  clock?: () => Date;
  /** First certificate serial ever (default 1). */
  serialStart?: bigint;
  /** Serials reserved per durable write (default 1000). */
  serialBlockSize?: number;
  requestGraceSec?: number;
  krlGraceSec?: number;
  /** For tests: inject audit write failures. */
  auditFs?: AuditFileOps;
}

export interface Store {
  state: OpenedState;
  audit: OpenedAuditLog;
  serials: SerialAllocator;
  /** Repairs made while opening (e.g. a torn audit line cut away), for the daemon to log. */
  warnings: string[];
  close(): Promise<void>;
}

const SERIAL = /^\d{1,19}$/;

export async function openStore(dataDir: string, opts: StoreOptions = {}): Promise<Store> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await checkDataDirTrust(dataDir);
  const lock = await acquireDataDirLock(dataDir);
  let audit: OpenedAuditLog | undefined;
  try {
    // Defence in depth for serial uniqueness: never start below a serial the audit has seen,
    // even if the reservation file was lost or restored from an old backup.
    let maxSerial = 0n;
    const nowSec = Math.floor((opts.clock?.() ?? new Date()).getTime() / 1000);
    const replay = auditReplay(nowSec, opts.krlGraceSec ?? KRL_GRACE_SEC);
    audit = await openAuditLog(join(dataDir, STORE_FILES.audit), {
      clock: opts.clock,
      fs: opts.auditFs,
      onRecord: (r) => {
        replay.onRecord(r);
        const s = typeof r.serial === 'number' ? String(r.serial) : r.serial;
        if (typeof s === 'string' && SERIAL.test(s) && BigInt(s) > maxSerial) maxSerial = BigInt(s);
      },
    });
    const serials = await openSerialAllocator(join(dataDir, STORE_FILES.serial), {
      blockSize: opts.serialBlockSize,
      serialStart: opts.serialStart,
      floor: maxSerial,
    });
    const state = await openState(join(dataDir, STORE_FILES.state), {
      clock: opts.clock,
      requestGraceSec: opts.requestGraceSec,
      krlGraceSec: opts.krlGraceSec,
    });
    // Auto-issued grants live in memory only; their audit records bring them back. So do the
    // revocations, whatever state file (lost, or restored from an old backup) we found.
    for (const g of replay.grants()) state.recordIssued(g);
    await state.restoreRevocations(replay.certRevocations(), replay.keyRevocations(), replay.krlFloor());
    const opened = boundedAudit(audit);
    let closed = false;
    return {
      state,
      audit: opened,
      serials,
      warnings: [...opened.warnings, ...state.warnings],
      async close() {
        if (closed) return;
        closed = true;
        try {
          await state.close();
        } finally {
          try {
            await opened.close();
          } finally {
            await lock.release();
          }
        }
      },
    };
  } catch (e) {
    await audit?.close().catch(() => undefined);
    await lock.release();
    throw e;
  }
}
