/**
 * The daemon's side of audit checkpoints: on start, check the log still reaches the last signed
 * checkpoint with the same hash (else refuse to start: records were cut or rewritten); then sign
 * the head every N records or T seconds (never per record: the append path only compares two
 * numbers), and once more on a clean shutdown.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { JitError } from '../errors.js';
import type { OpenedAuditLog } from './audit.js';
import {
  appendCheckpoint,
  CHECKPOINT_FILES,
  checkpointSignedBy,
  lastCheckpoint,
  openCheckpointKey,
  repairCheckpointFile,
  signCheckpoint,
  type Checkpoint,
  type CheckpointKey,
} from './audit-checkpoints.js';

export interface CheckpointLog {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface CheckpointerOptions {
  dataDir: string;
  audit: OpenedAuditLog;
  /** Sign the head once this many records were added since the last checkpoint. */
  everyRecords: number;
  /** …or this many seconds passed with at least one new record. */
  intervalSec: number;
  /** Also send each checkpoint to syslog (`logger -p auth.notice`), when logger exists. */
  syslog: boolean;
  log: CheckpointLog;
  clock?: () => Date;
}

export interface Checkpointer {
  /** Signs and stores the current head now, unless it is already checkpointed. */
  checkpoint(): Promise<Checkpoint | undefined>;
  /** Stops the timer and writes a last checkpoint of the head. */
  close(): Promise<void>;
}

/** Why the log cannot be trusted against the last checkpoint, or undefined when it can. */
async function checkAgainst(audit: OpenedAuditLog, last: Checkpoint, key: CheckpointKey): Promise<string | undefined> {
  if (!checkpointSignedBy(last, key.publicKeyBlob)) {
    return `the last checkpoint (seq ${last.seq}, ${last.time}) is not signed by this data dir's checkpoint key ${key.fingerprint}: the checkpoint file or the key was replaced`;
  }
  const head = audit.head();
  if (head.seq < last.seq) {
    return `the audit log ends at seq ${head.seq}, but a checkpoint signed at ${last.time} says seq ${last.seq} existed: records were cut off the end (or the log was restored from an older copy)`;
  }
  const [rec] = await audit.tail(last.seq - 1, 1);
  if (rec?.seq !== last.seq || rec.hash !== last.hash) {
    return `audit record seq ${last.seq} differs from the checkpoint signed at ${last.time}: the log was rewritten at or before seq ${last.seq} and its chain recomputed`;
  }
  return undefined;
}

export async function startCheckpointer(o: CheckpointerOptions): Promise<Checkpointer> {
  const clock = o.clock ?? (() => new Date());
  const file = join(o.dataDir, CHECKPOINT_FILES.log);
  const key = openCheckpointKey(o.dataDir, clock());
  await repairCheckpointFile(file);
  const last = await lastCheckpoint(file);
  if (last) {
    const problem = await checkAgainst(o.audit, last, key);
    if (problem) {
      throw new JitError(
        'internal',
        `refusing to start: ${problem}. Run \`jit-sshd audit verify\`; keep the data dir as evidence. ` +
          `To accept this log anyway (e.g. after a deliberate restore), move ${file} aside.`,
      );
    }
  }
  let lastSeq = last?.seq ?? 0;
  // One checkpoint at a time, in seq order.
  let chain: Promise<Checkpoint | undefined> = Promise.resolve(undefined);
  let closed = false;

  const write = async (): Promise<Checkpoint | undefined> => {
    const head = o.audit.head();
    if (head.seq <= lastSeq) return undefined;
    try {
      const c = signCheckpoint(key, head, clock());
      await appendCheckpoint(file, o.dataDir, c);
      lastSeq = c.seq;
      o.log.info({ auditCheckpoint: c }, 'audit checkpoint');
      if (o.syslog) toSyslog(c);
      return c;
    } catch (e) {
      // The log itself is unaffected; the next trigger retries.
      o.log.error({ error: (e as Error).message }, 'audit checkpoint failed');
      return undefined;
    }
  };
  const checkpoint = (): Promise<Checkpoint | undefined> => (chain = chain.then(write));

  // In the background: the head is already durable, and a restart should not wait for a sync.
  void checkpoint();
  let queued = false;
  o.audit.onCommit((head) => {
    if (closed || queued || head.seq - lastSeq < o.everyRecords) return;
    queued = true;
    void checkpoint().finally(() => (queued = false));
  });
  const timer = setInterval(() => void checkpoint(), o.intervalSec * 1000);
  timer.unref();

  return {
    checkpoint,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await checkpoint();
    },
  };
}

/** Best effort: a missing logger or syslog daemon must not disturb the CA (the daemon log has it). */
function toSyslog(c: Checkpoint): void {
  try {
    const p = spawn('logger', ['-t', 'jit-sshd', '-p', 'auth.notice', '--', `audit checkpoint ${JSON.stringify(c)}`], { stdio: 'ignore' });
    p.on('error', () => undefined);
    p.unref();
  } catch {
    // not installed
  }
}
