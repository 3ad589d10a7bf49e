/**
 * The data dir: one lock, one audit log (the record), one state file (a cache of live state),
 * one serial reservation, and (with `snapshots`) a signed start-up snapshot of the replay.
 * Layout:
 *   <dataDir>/jit-sshd.lock  audit.jsonl  state.json (+ state.journal)  serial  audit-snapshot.json
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { openAuditLog, type AuditFileOps, type FileAuditLog } from './audit.js';
import { checkDataDirTrust } from './data-dir.js';
import { acquireDataDirLock, LOCK_FILE } from './lock.js';
import { openSerialAllocator, type SerialAllocator } from './serials.js';
import { KRL_GRACE_SEC, openState, type OpenedState } from './state.js';
import { auditReplay } from './replay.js';
import { compactGrantFromIssue } from './grant-index.js';
import { MAX_AUDIT_RECORD_BYTES } from './bounded-audit.js';
import { openCheckpointKey } from './audit-checkpoints.js';
import { readSnapshot, writeSnapshot, type SnapshotPayload } from './audit-snapshot.js';

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
  /**
   * Start from the signed start-up snapshot when there is one (reading only the log's tail), and
   * keep the replay current so startSnapshots() can write new ones. Off: every open replays
   * and verifies the whole log.
   */
  snapshots?: boolean;
}

export interface SnapshotOptions {
  /** Write a snapshot once this many records were added since the last one… */
  everyRecords: number;
  /** …or this many seconds passed with at least one new record. */
  intervalSec: number;
  /** A failed write leaves the previous snapshot (a longer tail next start); report it. */
  onError(e: unknown): void;
}

export interface Store {
  state: OpenedState;
  audit: FileAuditLog;
  serials: SerialAllocator;
  /** Repairs made while opening (e.g. a torn audit line cut away), for the daemon to log. */
  warnings: string[];
  /** How the open went: records replayed from the log, and whether a snapshot covered the rest. */
  opened: { fromSnapshotSeq: number; replayedRecords: number };
  /**
   * Starts writing start-up snapshots (needs `snapshots: true`). Call it only once the log is
   * trusted (after the checkpoint check): a refused start must write nothing. The last one is
   * written on close().
   */
  startSnapshots(o: SnapshotOptions): void;
  close(): Promise<void>;
}


export async function openStore(dataDir: string, opts: StoreOptions = {}): Promise<Store> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await checkDataDirTrust(dataDir);
  const lock = await acquireDataDirLock(dataDir);
  let audit: FileAuditLog | undefined;
  try {
    const clock = opts.clock ?? (() => new Date());
    const nowSec = Math.floor(clock().getTime() / 1000);
    const krlGraceSec = opts.krlGraceSec ?? KRL_GRACE_SEC;
    const openWarnings: string[] = [];
    const key = opts.snapshots ? openCheckpointKey(dataDir, clock()) : undefined;
    const snap = key ? await readSnapshot(dataDir, key) : undefined;
    if (snap && 'problem' in snap) {
      openWarnings.push(`start-up snapshot ignored (${snap.problem}); replaying and verifying the whole audit log instead`);
    }
    const from = snap && 'payload' in snap ? snap.payload : undefined;
    const replay = auditReplay(nowSec, krlGraceSec, from?.state);
    let replayedRecords = 0;
    audit = await openAuditLog(join(dataDir, STORE_FILES.audit), {
      clock: opts.clock,
      fs: opts.auditFs,
      resume: from?.resume,
      maxRecordBytes: MAX_AUDIT_RECORD_BYTES,
      onRecord: (r) => {
        replayedRecords++;
        replay.onRecord(r);
      },
    });
    // Defence in depth for serial uniqueness: never start below a serial the audit has seen,
    // even if the reservation file was lost or restored from an old backup.
    const serials = await openSerialAllocator(join(dataDir, STORE_FILES.serial), {
      blockSize: opts.serialBlockSize,
      serialStart: opts.serialStart,
      floor: replay.maxSerial(),
    });
    const state = await openState(join(dataDir, STORE_FILES.state), {
      clock: opts.clock,
      requestGraceSec: opts.requestGraceSec,
      krlGraceSec: opts.krlGraceSec,
      // The replay kept current for snapshots forgets expired revocations when the state does.
      onPrune: opts.snapshots ? (t) => replay.prune(t) : undefined,
    });
    // Auto-issued grants live in memory only; their audit records bring them back. So do the
    // revocations, whatever state file (lost, or restored from an old backup) we found.
    for (const g of replay.takeGrants()) state.adoptGrant(g);
    await state.restoreRevocations(replay.certRevocations(), replay.keyRevocations(), replay.krlFloor());
    const opened = audit;
    // One grant index, the state's, fed by each commit before anything else hears of it: it
    // agrees with the log's head whenever a snapshot is taken (issuers record their grant only
    // after their append resolves).
    opened.onCommit((_head, records) => {
      for (const r of records) {
        const g = r.type === 'issue' ? compactGrantFromIssue(r) : undefined;
        if (g) state.adoptGrant(g);
      }
    });
    const snapshotter = key && snapshotWriter(dataDir, key, opened, replay, state, clock, replayedRecords);
    let closed = false;
    return {
      state,
      audit: opened,
      serials,
      warnings: [...openWarnings, ...opened.warnings, ...state.warnings],
      opened: { fromSnapshotSeq: from?.resume.seq ?? 0, replayedRecords },
      startSnapshots(o) {
        if (!snapshotter) throw new Error('startSnapshots needs openStore(…, { snapshots: true })');
        snapshotter.start(o);
      },
      async close() {
        if (closed) return;
        closed = true;
        try {
          await serials.idle?.();
          await state.close();
        } finally {
          try {
            await opened.close();
            await snapshotter?.close();
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

/** Records a start may replay before it writes a fresh snapshot right away. */
const SNAPSHOT_AFTER_LONG_TAIL = 1000;

interface SnapshotWriter {
  start(o: SnapshotOptions): void;
  /** Writes the last snapshot (if started and anything changed). */
  close(): Promise<void>;
}

/**
 * Keeps the replay current from every committed batch, and (once started) writes a snapshot
 * every N records or T seconds, one at a time, never on the append path itself.
 */
function snapshotWriter(
  dataDir: string,
  key: ReturnType<typeof openCheckpointKey>,
  audit: FileAuditLog,
  replay: ReturnType<typeof auditReplay>,
  state: OpenedState,
  clock: () => Date,
  replayedAtOpen: number,
): SnapshotWriter {
  let options: SnapshotOptions | undefined;
  let lastSeq = replayedAtOpen >= SNAPSHOT_AFTER_LONG_TAIL ? -1 : audit.head().seq;
  let writing: Promise<void> | undefined;
  let again = false;
  let timer: NodeJS.Timeout | undefined;

  const take = (): SnapshotPayload => {
    const now = clock();
    const nowSec = Math.floor(now.getTime() / 1000);
    return { resume: audit.resumePoint(), time: now.toISOString(), state: { ...replay.exportState(nowSec), grants: state.liveGrants(nowSec) } };
  };
  const write = (): Promise<void> => {
    if (writing) {
      again = true;
      return writing;
    }
    if (audit.head().seq === lastSeq) return Promise.resolve();
    const payload = take(); // one synchronous step: state and position agree
    writing = writeSnapshot(dataDir, key, payload)
      .then(() => {
        lastSeq = payload.resume.seq;
      })
      .catch((e: unknown) => options?.onError(e))
      .finally(() => {
        writing = undefined;
        if (again) {
          again = false;
          void write();
        }
      });
    return writing;
  };

  audit.onCommit((head, records) => {
    for (const r of records) replay.onRecord(r);
    if (options && !writing && head.seq - lastSeq >= options.everyRecords) void write();
  });

  return {
    start(o) {
      options = o;
      timer = setInterval(() => void write(), o.intervalSec * 1000);
      timer.unref();
      if (lastSeq < 0) void write();
    },
    async close() {
      if (!options) return;
      clearInterval(timer);
      while (writing) await writing;
      again = false;
      await write();
    },
  };
}
