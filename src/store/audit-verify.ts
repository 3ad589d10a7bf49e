/**
 * `jit-sshd audit verify`: the hash chain, plus every anchor that pins it — the signed
 * checkpoints in the data dir, signed checkpoints kept elsewhere (syslog, a copy), and heads an
 * operator noted (SEQ:HASH). Each anchor's (seq, hash) must be on the chain, and the chain must
 * reach the highest anchor. Streams the log and the checkpoint file: memory does not grow with
 * either. Every failure is one sentence saying what was found and what it means.
 */
import type { AuditRecord } from './types.js';
import { verifyAuditFile, verifyAuditLines, type ChainBreak, type Line, type VerifyAuditOptions } from './audit.js';
import { checkpointSignedBy, readCheckpoints, type Checkpoint } from './audit-checkpoints.js';

export interface Anchor {
  seq: number;
  hash: string;
  /** Where it came from, for messages: "checkpoint signed at …", "--expect-head". */
  source: string;
}

export interface AnchoredVerifyOptions {
  auditFile: string;
  /** The chain's lines from elsewhere (the database); when set, auditFile is not read. */
  auditLines?: AsyncIterable<Pick<Line, 'text' | 'tooLong' | 'terminated'>>;
  /** The data dir's checkpoint file (may not exist yet). */
  checkpointFile: string;
  /** The checkpoint public key blob; undefined when there is none (then any checkpoint fails). */
  publicKey: Buffer | undefined;
  /** Checkpoints kept off the box; their signatures are checked like the local ones. */
  external: readonly { checkpoint: Checkpoint; source: string }[];
  /** Heads noted off the box (SEQ:HASH); no signature. */
  heads: readonly Anchor[];
}

export type AnchoredVerifyResult =
  | { ok: true; records: number; lastSeq: number; lastHash: string; checkpoints: number; external: number; latest?: Anchor }
  | { ok: false; records: number; problem: string; chainBreak?: ChainBreak };

const shortHash = (h: string) => `${h.slice(0, 12)}…`;

export async function verifyAnchoredAudit(o: AnchoredVerifyOptions): Promise<AnchoredVerifyResult> {
  let problem: string | undefined;
  const fail = (p: string) => (problem ??= p);
  const local = readCheckpoints(o.checkpointFile)[Symbol.asyncIterator]();
  let nextLocal: Anchor | undefined;
  let localSeen = 0;
  let localPrev = 0;

  /** Pulls the next local checkpoint, checking its form, signature and order. */
  const pullLocal = async (): Promise<void> => {
    nextLocal = undefined;
    if (problem) return;
    const n = await local.next();
    if (n.done) return;
    const { line, checkpoint: c } = n.value;
    const where = `checkpoint file line ${line}`;
    if (!c) return void fail(`${where} is not a checkpoint: the checkpoint file was edited`);
    if (!o.publicKey) return void fail(`${where} is signed, but there is no checkpoint public key to check it (audit-checkpoint.pub is missing; pass --checkpoint-key)`);
    if (!checkpointSignedBy(c, o.publicKey)) {
      return void fail(`${where} (seq ${c.seq}, ${c.time}) is not signed by the checkpoint key: the checkpoint file was edited or the key replaced`);
    }
    if (c.seq < localPrev) return void fail(`${where} (seq ${c.seq}) goes back from seq ${localPrev}: the checkpoint file was edited`);
    localPrev = c.seq;
    localSeen++;
    nextLocal = { seq: c.seq, hash: c.hash, source: `the checkpoint signed at ${c.time}` };
  };

  // External anchors are few (an operator's copy): sorted in memory.
  const outside: Anchor[] = [...o.heads];
  for (const { checkpoint: c, source } of o.external) {
    if (!o.publicKey || !checkpointSignedBy(c, o.publicKey)) {
      fail(`the checkpoint from ${source} (seq ${c.seq}, ${c.time}) is not signed by this data dir's checkpoint key: the key was replaced or the copy is not from this CA`);
    }
    outside.push({ seq: c.seq, hash: c.hash, source: `the checkpoint from ${source} signed at ${c.time}` });
  }
  outside.sort((a, b) => a.seq - b.seq);
  let outsideAt = 0;
  let latest: Anchor | undefined;

  const check = (a: Anchor, r: AuditRecord): void => {
    if (a.hash !== r.hash) {
      fail(
        `record seq ${a.seq} has hash ${shortHash(r.hash)} but ${a.source} says ${shortHash(a.hash)}: ` +
          `the log was rewritten at or before seq ${a.seq} and its chain recomputed`,
      );
    }
    if (!latest || a.seq >= latest.seq) latest = a;
  };

  await pullLocal();
  const onRecord: VerifyAuditOptions = {
    onRecord: (r) => {
      while (outsideAt < outside.length && outside[outsideAt].seq === r.seq) check(outside[outsideAt++], r);
      if (!nextLocal || nextLocal.seq !== r.seq) return undefined;
      return (async () => {
        while (nextLocal && nextLocal.seq === r.seq) {
          check(nextLocal, r);
          await pullLocal();
        }
      })();
    },
  };
  const chain = o.auditLines ? await verifyAuditLines(o.auditLines, onRecord) : await verifyAuditFile(o.auditFile, onRecord);
  if (!chain.ok) {
    const b = chain.firstBreak;
    return { ok: false, records: chain.records, chainBreak: b, problem: `the hash chain breaks at line ${b.line} (seq ${b.seq}): ${b.message}` };
  }
  if (problem) return { ok: false, records: chain.records, problem };
  // Every anchor up to the last record was checked on the way; one left over lies past the end.
  // (Local checkpoints only increase, so nextLocal is the lowest of those left.)
  const beyond = [nextLocal, outside[outside.length - 1]].filter((a): a is Anchor => !!a && a.seq > chain.lastSeq);
  if (beyond.length > 0) {
    const a = beyond.reduce((x, y) => (y.seq > x.seq ? y : x));
    return {
      ok: false,
      records: chain.records,
      problem: `the log ends at seq ${chain.lastSeq}, but ${a.source} says seq ${a.seq} existed: records after seq ${chain.lastSeq} were cut off (truncated)`,
    };
  }
  return {
    ok: true,
    records: chain.records,
    lastSeq: chain.lastSeq,
    lastHash: chain.lastHash,
    checkpoints: localSeen,
    external: outside.length,
    ...(latest ? { latest } : {}),
  };
}
