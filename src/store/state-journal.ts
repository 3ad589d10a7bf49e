/**
 * The state's write-ahead journal, so that the cost of a state write follows the size of the
 * change, not the size of everyone's state: a change is one appended, fdatasync'ed JSON line
 * (`state.journal`), and the whole state is rewritten (through lowdb, atomically) only when the
 * journal has grown past the size of the last snapshot — amortised O(1) per change.
 *
 * Each line is one group commit: for every key changed since the last write, its current value
 * (or null: deleted). Lines carry the snapshot's epoch; a snapshot bumps the epoch before the
 * journal is emptied, so a crash between the two leaves lines that are recognisably older than
 * the snapshot and are ignored rather than replayed over newer data. A torn last line (crash
 * mid-append) was never acknowledged: reading stops there.
 */
import { constants } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { errorCode } from '../files.js';
import type { CertRevocation, KeyRevocation, RequestRecord, TokenRecord } from './types.js';

/** A Map that remembers which keys changed since the last take(). */
export class TrackedMap<V> extends Map<string, V> {
  private dirty?: Set<string>;

  override set(key: string, value: V): this {
    super.set(key, value);
    this.dirty?.add(key);
    return this;
  }

  override delete(key: string): boolean {
    const had = super.delete(key);
    if (had) this.dirty?.add(key);
    return had;
  }

  /** Marks a value changed in place. */
  touch(key: string): void {
    this.dirty?.add(key);
  }

  /** Starts tracking (after loading), or returns and forgets the changes since the last call. */
  takeChanges(): Array<[string, V | null]> {
    const keys = this.dirty ?? new Set<string>();
    this.dirty = new Set();
    return [...keys].map((k) => [k, this.get(k) ?? null]);
  }
}

export interface JournalEntry {
  /** Epoch of the snapshot this line follows. */
  e: number;
  req?: Array<[string, RequestRecord | null]>;
  rev?: Array<[string, CertRevocation | null]>;
  key?: Array<[string, KeyRevocation | null]>;
  tok?: Array<[string, TokenRecord | null]>;
  krl?: number;
}

export interface JournalRead {
  entries: JournalEntry[];
  /** Bytes in the file (whatever was read or skipped). */
  bytes: number;
  warnings: string[];
}

/** The lines that belong to `epoch`, up to the first unreadable one. */
export async function readJournal(file: string, epoch: number): Promise<JournalRead> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return { entries: [], bytes: 0, warnings: [] };
    throw e;
  }
  const entries: JournalEntry[] = [];
  const warnings: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] === '') continue;
    let entry: JournalEntry;
    try {
      entry = JSON.parse(lines[i]) as JournalEntry;
    } catch {
      warnings.push(`state journal: line ${i + 1} is torn (a write cut short by a crash); the changes after it were never acknowledged and are dropped`);
      break;
    }
    if (entry?.e === epoch) entries.push(entry);
  }
  return { entries, bytes: Buffer.byteLength(text), warnings };
}

/**
 * The append side. Opened for each write (O_APPEND, never through a symlink): an open() is cheap
 * next to the fdatasync, and a journal removed or replaced under the daemon is then an error,
 * not a write into an unlinked file.
 */
export class JournalWriter {
  constructor(private readonly file: string) {}

  private open(): Promise<FileHandle> {
    return open(this.file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  }

  async append(line: string): Promise<void> {
    const fh = await this.open();
    try {
      await fh.write(line);
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }

  /** Empties the journal (after a snapshot made its lines redundant). */
  async truncate(): Promise<void> {
    const fh = await this.open();
    try {
      await fh.truncate(0);
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }
}
