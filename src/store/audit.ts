/**
 * The audit log: append-only `audit.jsonl`, one JSON record per line, each chained to the one
 * before by `hash = sha256hex(prevHash + canonicalJson(record without hash))` (genesis prevHash:
 * 64 zeros). Editing, deleting or reordering any record breaks the chain from that record on.
 *
 * Durability: append() resolves only after its line is fdatasync'ed. Appends that arrive while a
 * sync is in flight are written together and share the next sync (group commit), so throughput
 * grows with concurrency instead of being capped at one sync per record.
 *
 * seq and hashes are assigned when a batch is written, from the last *durable* record, so a
 * failed write (ENOSPC, EROFS, EIO…) leaves no hole: the file is truncated back to its last good
 * size and the next append continues the chain as if the failed ones never happened.
 */
import { hash as sha } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { JitError } from '../errors.js';
import { dirname, join } from 'node:path';
import { errorCode, fsyncDir } from '../files.js';
import type { AuditEvent, AuditLog, AuditRecord } from './types.js';

export const GENESIS_HASH = '0'.repeat(64);

/** The start-up snapshot's file, next to the log (see store/audit-snapshot.ts). */
export const AUDIT_SNAPSHOT_FILE = 'audit-snapshot.json';

/** The subset of a file handle the writer uses; tests inject failures and count syncs here. */
export interface AuditFileHandle {
  write(buf: Buffer, offset: number, length: number): Promise<{ bytesWritten: number }>;
  datasync(): Promise<void>;
  truncate(len: number): Promise<void>;
  close(): Promise<void>;
}

export interface AuditFileOps {
  /** Open for appending (O_APPEND|O_CREAT), mode 0600. */
  openAppend(file: string): Promise<AuditFileHandle>;
}

export const nodeAuditFileOps: AuditFileOps = {
  openAppend: (file) => open(file, 'a', 0o600),
};

export interface OpenAuditOptions {
  clock?: () => Date;
  fs?: AuditFileOps;
  /** Called for every record found while verifying the file on open (e.g. to find the highest serial). */
  onRecord?: (r: AuditRecord) => void;
  /**
   * Start from a verified position (the start-up snapshot's) instead of the file's start: only
   * the records after it are read, checked and passed to onRecord. The record ending at
   * `bytes` must be seq `seq` with hash `hash`, else the log was cut or rewritten there and
   * opening fails (nothing is written).
   */
  resume?: AuditResumePoint;
  /**
   * Refuse (bad_request, nothing written) a record whose event part is longer than this many
   * bytes in the log. Checked on the line the writer builds anyway: no second serialisation.
   */
  maxRecordBytes?: number;
}

/** Bytes the writer adds to an event's JSON: the seq, time and prevHash members, their commas, and the hash suffix. */
function envelopeBytes(seq: number, time: string): number {
  return `"seq":${seq},"time":"${time}","prevHash":"${GENESIS_HASH}",`.length + HASH_SUFFIX_LENGTH;
}

export type AuditHead = { seq: number; hash: string };

/** Where the durable chain ends: head, file size, and the tail() index for the records before it. */
export interface AuditResumePoint extends AuditHead {
  bytes: number;
  /** offsets[i] = byte offset of record seq i*1024 + 1 (see STRIDE). */
  offsets: number[];
}

export interface OpenedAuditLog extends AuditLog {
  /** Things repaired on open (a torn last line), for the daemon to log. */
  readonly warnings: readonly string[];
  /**
   * Calls fn with the new head after every durable batch (e.g. to checkpoint every N records).
   * fn runs on the append path: it must be cheap and must not throw. `records` are the batch's
   * new records, in order (shared: fn must not change them).
   */
  onCommit(fn: (head: AuditHead, records: readonly AuditRecord[]) => void): void;
}

/** The JSONL log: also where a start-up snapshot may resume reading. */
export interface FileAuditLog extends OpenedAuditLog {
  /** The durable head with its file position, consistent with the records committed so far. */
  resumePoint(): AuditResumePoint;
}

export type VerifyResult =
  | { ok: true; records: number; lastSeq: number; lastHash: string }
  | { ok: false; records: number; firstBreak: ChainBreak };

export interface ChainBreak {
  /** 1-based line number in the file. */
  line: number;
  /** The seq the chain expected at that line: the first record that cannot be trusted. */
  seq: number;
  /** The seq written on that line, when it had one. */
  found?: number;
  reason:
    | 'bad_json'
    | 'bad_record'
    | 'line_too_long'
    | 'seq_gap'
    | 'seq_out_of_order'
    | 'prev_hash_mismatch'
    | 'hash_mismatch'
    | 'torn_line';
  message: string;
}

// ---------------------------------------------------------------------------------------------
// Canonical form and hashing

/** JSON.stringify with object keys sorted (recursively, by UTF-16 code unit); undefined members dropped. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += (i ? ',' : '') + (value[i] === undefined ? 'null' : canonicalJson(value[i]));
    return out + ']';
  }
  const obj = value as Record<string, unknown>;
  let out = '{';
  for (const k of Object.keys(obj).sort()) {
    const v = obj[k];
    if (v === undefined) continue;
    out += (out.length > 1 ? ',' : '') + JSON.stringify(k) + ':' + canonicalJson(v);
  }
  return out + '}';
}

export function recordHash(prevHash: string, recordWithoutHash: Record<string, unknown>): string {
  return sha('sha256', prevHash + canonicalJson(recordWithoutHash), 'hex');
}

const RESERVED = new Set(['seq', 'time', 'prevHash', 'hash']);
// Callers pass records; this is the last line of defence against one carrying a credential.
const SECRET_FIELD = /^(token|accesstoken|bearer|signature|privatekey|password|secret)$/i;

/** The event as plain JSON data (bigint → decimal string), refusing reserved and secret fields. */
export function normalizeEvent(event: AuditEvent): Record<string, unknown> {
  if (typeof event?.type !== 'string' || event.type === '') {
    throw new JitError('internal', 'audit event needs a non-empty string type');
  }
  for (const k of Object.keys(event)) {
    if (RESERVED.has(k)) throw new JitError('internal', `audit event may not set the field "${k}"`);
  }
  // One pass instead of a JSON round trip: this runs for every issued certificate.
  return plainData(event, 0) as Record<string, unknown>;
}

/** A JSON-safe copy: bigint → string, undefined members dropped, secret-looking names refused. */
function plainData(v: unknown, depth: number): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v === null || typeof v !== 'object') {
    if (typeof v === 'number' && !Number.isFinite(v)) return null;
    return typeof v === 'function' || typeof v === 'symbol' ? undefined : v;
  }
  if (depth > 32) throw new JitError('internal', 'audit event is nested too deeply');
  if (Array.isArray(v)) return v.map((x) => plainData(x, depth + 1) ?? null);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    const child = plainData((v as Record<string, unknown>)[k], depth + 1);
    if (child === undefined) continue;
    if (SECRET_FIELD.test(k)) {
      throw new JitError('internal', `refusing to audit a field named "${k}": audit records never hold secrets`);
    }
    out[k] = child;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reading and checking

export interface Line {
  /** The line without its newline; empty when tooLong. */
  text: string;
  /** Byte offset of the line's first byte, and just past its newline. */
  start: number;
  end: number;
  /** False only for a last line without a newline: a write cut short. */
  terminated: boolean;
  /** Longer than MAX_LINE_BYTES: not decoded, so no line can exhaust memory or V8's string limit. */
  tooLong: boolean;
}

const CHUNK = 1 << 20;
/** Far above any record the daemon writes (a few KiB), far below V8's ~512 MiB string limit. */
export const MAX_LINE_BYTES = 16 << 20;

/**
 * Lines of [from, to) of an open file, read in 1 MiB chunks: memory stays bounded by one line
 * (at most MAX_LINE_BYTES) plus one chunk, whatever the file's size.
 */
export async function* readLines(fh: FileHandle, from = 0, to = Infinity): AsyncGenerator<Line> {
  let pos = from;
  // The current line's bytes seen so far, kept as chunks and joined once (no quadratic concat).
  let parts: Buffer[] = [];
  let partsLength = 0;
  let lineStart = from;
  let tooLong = false;
  const buf = Buffer.allocUnsafe(CHUNK);
  const take = (piece: Buffer): void => {
    if (tooLong) return;
    if (partsLength + piece.length > MAX_LINE_BYTES) {
      tooLong = true;
      parts = [];
      partsLength = 0;
      return;
    }
    parts.push(Buffer.from(piece));
    partsLength += piece.length;
  };
  const finish = (end: number, terminated: boolean): Line => {
    const text = tooLong ? '' : (parts.length === 1 ? parts[0] : Buffer.concat(parts, partsLength)).toString('utf8');
    const line = { text, start: lineStart, end, terminated, tooLong };
    parts = [];
    partsLength = 0;
    tooLong = false;
    lineStart = end;
    return line;
  };
  for (;;) {
    const want = Math.min(CHUNK, to - pos);
    if (want <= 0) break;
    const { bytesRead } = await fh.read(buf, 0, want, pos);
    if (bytesRead === 0) break;
    const data = buf.subarray(0, bytesRead);
    let from0 = 0;
    for (let nl = data.indexOf(10); nl !== -1; nl = data.indexOf(10, from0)) {
      if (parts.length === 0 && !tooLong) {
        // The common case: the whole line is inside this chunk, decode it in place.
        yield { text: data.toString('utf8', from0, nl), start: lineStart, end: pos + nl + 1, terminated: true, tooLong: nl - from0 > MAX_LINE_BYTES };
        lineStart = pos + nl + 1;
      } else {
        take(data.subarray(from0, nl));
        yield finish(pos + nl + 1, true);
      }
      from0 = nl + 1;
    }
    if (from0 < bytesRead) take(data.subarray(from0));
    pos += bytesRead;
  }
  if (partsLength > 0 || tooLong) yield finish(pos, false);
}

/** Records are bounded far below this (bounded-audit.ts), so the window always holds a whole one. */
const MAX_AUDIT_LINE_WINDOW = 256 * 1024;

function withoutHash(rec: Record<string, unknown>): Record<string, unknown> {
  const { hash: _hash, ...rest } = rec;
  return rest;
}

/** The seq of the last whole line of the file (0 when it has none readable), for error messages. */
async function lastSeqOf(rd: FileHandle, fileSize: number): Promise<number> {
  const window = Math.min(fileSize, MAX_AUDIT_LINE_WINDOW);
  const buf = Buffer.alloc(window);
  const { bytesRead } = await rd.read(buf, 0, window, fileSize - window);
  const end = buf.lastIndexOf(10, bytesRead - 1);
  if (end < 0) return 0;
  const start = buf.lastIndexOf(10, end - 1) + 1;
  try {
    const seq = (JSON.parse(buf.toString('utf8', start, end)) as { seq?: unknown }).seq;
    return typeof seq === 'number' ? seq : 0;
  } catch {
    return 0;
  }
}

const HASH_MEMBER = ',"hash":"';
const HASH_SUFFIX_LENGTH = HASH_MEMBER.length + 64 + 2;

/**
 * Fast path: the writer emits each line as the record's canonical JSON with the hash member
 * appended, so the hashed text is the line minus that member, and re-serialising is needed
 * only for lines written otherwise. Accepting a hash over the line's own text proves no less:
 * whoever could write a matching non-canonical line could as well write a canonical one.
 */
function lineHashMatches(text: string, prevHash: string, hash: string): boolean {
  const at = text.length - HASH_SUFFIX_LENGTH;
  if (at <= 0 || !text.startsWith(HASH_MEMBER, at)) return false;
  return sha('sha256', prevHash + text.slice(0, at) + '}', 'hex') === hash;
}

/** Walks the chain one line at a time, remembering the last good record. */
class ChainChecker {
  seq = 0;
  hash = GENESIS_HASH;
  lines = 0;

  /** Continues a chain verified up to `from` (one record per line, so line n holds seq n). */
  static after(from: AuditHead): ChainChecker {
    const c = new ChainChecker();
    c.seq = from.seq;
    c.hash = from.hash;
    c.lines = from.seq;
    return c;
  }

  /** The record, or why this line breaks the chain. Advances only on a good record. */
  check(line: Pick<Line, 'text' | 'tooLong'>): { record: AuditRecord } | { broken: ChainBreak } {
    this.lines++;
    const expected = this.seq + 1;
    const fail = (reason: ChainBreak['reason'], message: string, found?: number) => ({
      broken: { line: this.lines, seq: expected, ...(found === undefined ? {} : { found }), reason, message },
    });
    if (line.tooLong) return fail('line_too_long', `line ${this.lines} is longer than ${MAX_LINE_BYTES >> 20} MiB, more than any record`);
    const { text } = line;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return fail('bad_json', `line ${this.lines} is not valid JSON`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      return fail('bad_json', `line ${this.lines} is not a JSON object`);
    }
    const { hash, ...rest } = parsed as Record<string, unknown>;
    const { seq, prevHash } = rest;
    if (typeof seq !== 'number' || typeof hash !== 'string' || typeof prevHash !== 'string' || typeof rest.type !== 'string') {
      return fail('bad_record', `line ${this.lines} lacks seq, type, prevHash or hash`);
    }
    if (seq > expected) return fail('seq_gap', `expected seq ${expected}, found ${seq}: records deleted or reordered`, seq);
    if (seq < expected) return fail('seq_out_of_order', `expected seq ${expected}, found ${seq}: records duplicated or reordered`, seq);
    if (prevHash !== this.hash) return fail('prev_hash_mismatch', `seq ${seq} does not chain to seq ${seq - 1}: an earlier record was changed`, seq);
    if (!lineHashMatches(text, prevHash, hash) && recordHash(prevHash, rest) !== hash) {
      return fail('hash_mismatch', `seq ${seq} was changed after it was written`, seq);
    }
    this.seq = seq;
    this.hash = hash;
    return { record: parsed as AuditRecord };
  }
}

export interface VerifyAuditOptions {
  /** Called for every good record, in order; a returned promise is awaited before the next line. */
  onRecord?: (r: AuditRecord) => void | Promise<void>;
}

/** Checks a whole audit file, streaming; reports the first break. For `jit-sshd audit verify`. */
export async function verifyAuditFile(file: string, opts: VerifyAuditOptions = {}): Promise<VerifyResult> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    throw new JitError('not_found', `cannot read audit log ${file}: ${errorCode(e)}`, { cause: e });
  }
  try {
    return await verifyAuditLines(readLines(fh), opts);
  } finally {
    await fh.close();
  }
}

/** The same check over lines from anywhere (a file, or the database's audit table). */
export async function verifyAuditLines(
  lines: AsyncIterable<Pick<Line, 'text' | 'tooLong' | 'terminated'>>,
  opts: VerifyAuditOptions = {},
): Promise<VerifyResult> {
  const chain = new ChainChecker();
  for await (const line of lines) {
    if (!line.terminated) {
      return {
        ok: false,
        records: chain.seq,
        firstBreak: {
          line: chain.lines + 1,
          seq: chain.seq + 1,
          reason: 'torn_line',
          message: `last line ${chain.lines + 1} is incomplete (a write cut short; the daemon drops it on start)`,
        },
      };
    }
    const r = chain.check(line);
    if ('broken' in r) return { ok: false, records: chain.seq, firstBreak: r.broken };
    const pending = opts.onRecord?.(r.record);
    if (pending) await pending;
  }
  return { ok: true, records: chain.seq, lastSeq: chain.seq, lastHash: chain.hash };
}

// ---------------------------------------------------------------------------------------------
// The writer

/** Every STRIDE-th record's byte offset is remembered so tail() need not scan from the start. */
const STRIDE = 1024;
const MAX_TAIL = 10_000;

interface Pending {
  time: string;
  event: Record<string, unknown>;
  resolve: (r: AuditRecord) => void;
  reject: (e: unknown) => void;
}

class JsonlAuditLog implements FileAuditLog {
  readonly warnings: string[] = [];
  private seq = 0;
  private hash = GENESIS_HASH;
  /** Bytes of durable, verified records: everything past this is garbage to cut away. */
  private size = 0;
  /** offsets[i] = byte offset of record seq i*STRIDE + 1. */
  private readonly offsets: number[] = [];
  private fh: AuditFileHandle | undefined;
  private pending: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;
  private readonly commitListeners: ((head: AuditHead, records: readonly AuditRecord[]) => void)[] = [];

  constructor(
    private readonly file: string,
    private readonly clock: () => Date,
    private readonly ops: AuditFileOps,
    private readonly maxRecordBytes = Infinity,
  ) {}

  /** Verifies the existing file, cuts a torn last line, and opens it for appending. */
  async load(onRecord?: (r: AuditRecord) => void, resume?: AuditResumePoint): Promise<void> {
    let rd: FileHandle | undefined;
    try {
      rd = await open(this.file, 'r');
    } catch (e) {
      if (errorCode(e) !== 'ENOENT') throw new JitError('unavailable', `audit log not readable: ${errorCode(e)}`, { cause: e });
    }
    let fileSize = 0;
    if (rd) {
      try {
        fileSize = (await rd.stat()).size;
        let chain = new ChainChecker();
        if (resume) {
          await this.checkResumePoint(rd, fileSize, resume);
          chain = ChainChecker.after(resume);
          this.offsets.push(...resume.offsets);
          this.size = resume.bytes;
        }
        for await (const line of readLines(rd, this.size)) {
          if (!line.terminated) {
            this.warnings.push(
              `audit log ${this.file}: dropped an incomplete last line after seq ${chain.seq} ` +
                `(${line.end - line.start} bytes, a write cut short by a crash)`,
            );
            break;
          }
          const r = chain.check(line);
          if ('broken' in r) {
            const b = r.broken;
            throw new JitError('internal', `audit log ${this.file} is broken at seq ${b.seq} (line ${b.line}): ${b.message}`, {
              details: b,
            });
          }
          if ((r.record.seq - 1) % STRIDE === 0) this.offsets.push(line.start);
          onRecord?.(r.record);
          this.size = line.end;
        }
        this.seq = chain.seq;
        this.hash = chain.hash;
      } finally {
        await rd.close();
      }
    }
    if (!rd && resume && resume.seq > 0) throw this.cutOff(0, resume);
    this.fh = await this.ops.openAppend(this.file);
    // A new file's directory entry must be durable too, or the first records can vanish with it.
    if (!rd) await fsyncDir(dirname(this.file));
    if (fileSize > this.size) {
      await this.fh.truncate(this.size);
      await this.fh.datasync();
    }
  }

  /**
   * The record ending at byte `at.bytes` must be the one the resume point names, intact (its own
   * hash matches its text). Cutting the file below it, or rewriting any record at or before it
   * and recomputing the chain, changes that record: refuse, as the checkpoints do. (An edit that
   * does NOT recompute the chain stays in the sealed prefix unread; `jit-sshd audit verify`
   * walks the whole chain and finds it.)
   */
  private async checkResumePoint(rd: FileHandle, fileSize: number, at: AuditResumePoint): Promise<void> {
    if (at.seq === 0) return;
    if (fileSize < at.bytes) throw this.cutOff(await lastSeqOf(rd, fileSize), at);
    const window = Math.min(at.bytes, MAX_AUDIT_LINE_WINDOW);
    const buf = Buffer.alloc(window);
    const { bytesRead } = await rd.read(buf, 0, window, at.bytes - window);
    const nl = buf.lastIndexOf(10, bytesRead - 2);
    let rec: Record<string, unknown> | undefined;
    const text = buf.toString('utf8', nl + 1, bytesRead - 1);
    if (bytesRead === window && buf[window - 1] === 10 && (nl >= 0 || window === at.bytes)) {
      try {
        rec = JSON.parse(text) as Record<string, unknown>;
      } catch {
        rec = undefined;
      }
    }
    const intact =
      rec !== undefined &&
      rec.seq === at.seq &&
      rec.hash === at.hash &&
      typeof rec.prevHash === 'string' &&
      (lineHashMatches(text, rec.prevHash, at.hash) || recordHash(rec.prevHash, withoutHash(rec)) === at.hash);
    if (!intact) {
      throw new JitError(
        'internal',
        `refusing to start: audit record seq ${at.seq} differs from the start-up snapshot ${this.snapshotFile()}: ` +
          `the log was rewritten at or before seq ${at.seq} (and its chain recomputed), or replaced by another copy. ` +
          `Run \`jit-sshd audit verify\`; keep the data dir as evidence. To accept this log anyway, move the snapshot aside (the next start replays the whole log).`,
        { details: { seq: at.seq } },
      );
    }
  }

  private snapshotFile(): string {
    return join(dirname(this.file), AUDIT_SNAPSHOT_FILE);
  }

  private cutOff(lastSeq: number, at: AuditResumePoint): JitError {
    return new JitError(
      'internal',
      `refusing to start: the audit log ends at seq ${lastSeq}, but the start-up snapshot ${this.snapshotFile()} says seq ${at.seq} existed: ` +
        `records were cut off the end (or the log was restored from an older copy). Run \`jit-sshd audit verify\`; keep the data dir as evidence. ` +
        `To accept this log anyway, move the snapshot aside (the next start replays the whole log).`,
      { details: { seq: lastSeq, expected: at.seq } },
    );
  }

  head(): AuditHead {
    return { seq: this.seq, hash: this.hash };
  }

  resumePoint(): AuditResumePoint {
    return { seq: this.seq, hash: this.hash, bytes: this.size, offsets: [...this.offsets] };
  }

  onCommit(fn: (head: AuditHead, records: readonly AuditRecord[]) => void): void {
    this.commitListeners.push(fn);
  }

  async append(event: AuditEvent): Promise<AuditRecord> {
    if (this.closed) throw new JitError('unavailable', 'audit log is closed');
    const data = normalizeEvent(event);
    const time = this.clock().toISOString();
    return new Promise<AuditRecord>((resolve, reject) => {
      this.pending.push({ time, event: data, resolve, reject });
      // setImmediate, not a microtask: lets every append of this turn of the event loop join the batch.
      this.flushing ??= new Promise<void>((done) => setImmediate(() => void this.flushLoop().finally(done)));
    });
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending;
        this.pending = [];
        await this.writeBatch(batch);
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    let seq = this.seq;
    let hash = this.hash;
    const records: AuditRecord[] = [];
    const lines: string[] = [];
    const starts: number[] = [];
    let bytes = 0;
    const kept: Pending[] = [];
    for (const p of batch) {
      const body = { seq: seq + 1, time: p.time, ...p.event, prevHash: hash };
      // The line is the canonical form itself plus the hash: serialised once, hashed once.
      const canonical = canonicalJson(body);
      const lineBytes = Buffer.byteLength(canonical) + HASH_SUFFIX_LENGTH;
      if (lineBytes - envelopeBytes(body.seq, p.time) > this.maxRecordBytes) {
        p.reject(new JitError('bad_request', `audit record '${String(p.event.type)}' would exceed ${this.maxRecordBytes} bytes; shorten the free-text fields`));
        continue;
      }
      seq++;
      hash = sha('sha256', body.prevHash + canonical, 'hex');
      const rec = Object.assign(body, { hash }) as AuditRecord; // body is ours: no copy per record
      const line = `${canonical.slice(0, -1)},"hash":"${hash}"}\n`;
      starts.push(this.size + bytes);
      bytes += lineBytes;
      records.push(rec);
      lines.push(line);
      kept.push(p);
    }
    if (kept.length === 0) return;
    const buf = Buffer.from(lines.join(''));
    try {
      const fh = await this.writable();
      for (let off = 0; off < buf.length; ) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off);
        off += bytesWritten;
      }
      await fh.datasync();
    } catch (e) {
      await this.cutBackAfterFailure();
      const err = new JitError('unavailable', `audit log not writable: ${errorCode(e)}`, { cause: e });
      for (const p of kept) p.reject(err);
      return;
    }
    records.forEach((r, i) => {
      if ((r.seq - 1) % STRIDE === 0) this.offsets.push(starts[i]);
    });
    this.seq = seq;
    this.hash = hash;
    this.size += buf.length;
    kept.forEach((p, i) => p.resolve(records[i]));
    for (const fn of this.commitListeners) fn({ seq, hash }, records);
  }

  /** The append handle, reopened (and cut back to the last good size) after a failure. */
  private async writable(): Promise<AuditFileHandle> {
    if (this.fh) return this.fh;
    const fh = await this.ops.openAppend(this.file);
    try {
      await fh.truncate(this.size);
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e;
    }
    this.fh = fh;
    return fh;
  }

  /**
   * After a failed write or sync, part of the batch may be in the file (or only in the page
   * cache, where a later sync could still flush it). Drop the handle and cut the file back now;
   * if even that fails, writable() retries the cut before the next write.
   */
  private async cutBackAfterFailure(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close().catch(() => undefined);
    try {
      await this.writable();
    } catch {
      // Still broken: appends keep failing with 'unavailable' until the disk recovers.
    }
  }

  async tail(afterSeq: number, limit: number): Promise<AuditRecord[]> {
    const n = Math.min(Math.max(0, Math.floor(limit)), MAX_TAIL);
    const after = Math.max(0, Math.floor(afterSeq));
    const { seq: last } = this.head();
    const end = this.size;
    if (n === 0 || after >= last) return [];
    const start = this.offsets[Math.floor(after / STRIDE)] ?? 0;
    const out: AuditRecord[] = [];
    const rd = await open(this.file, 'r');
    try {
      for await (const line of readLines(rd, start, end)) {
        if (line.tooLong) continue; // load() refuses such a log, so only a later edit can put one here
        const r = JSON.parse(line.text) as AuditRecord;
        if (r.seq <= after) continue;
        out.push(r);
        if (out.length >= n || r.seq >= last) break;
      }
    } finally {
      await rd.close();
    }
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }
}

/**
 * Opens (creating if needed) an audit log. Verifies the whole chain first: a torn last line is
 * cut away (see `warnings`); any other break refuses to open, naming the seq, since appending
 * to a broken chain would bury the damage.
 */
export async function openAuditLog(file: string, opts: OpenAuditOptions = {}): Promise<FileAuditLog> {
  const log = new JsonlAuditLog(file, opts.clock ?? (() => new Date()), opts.fs ?? nodeAuditFileOps, opts.maxRecordBytes);
  await log.load(opts.onRecord, opts.resume);
  return log;
}
