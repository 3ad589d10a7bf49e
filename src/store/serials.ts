/**
 * Certificate serials: unique 64-bit, never reused, also across restarts and crashes.
 *
 * Serials are handed out from an in-memory block; before the first serial of a block leaves,
 * the block's end ("reserved up to") is made durable. After a crash the unused rest of the
 * block is skipped, never reissued. The next block is reserved in the background once half of
 * the current one is used, so under steady load no issuance waits for that durable write. The reservation lives in its own tiny file rather than the
 * lowdb state, so that deleting the state cache can never rewind serials.
 */
import { readFile } from 'node:fs/promises';
import { JitError } from '../errors.js';
import { errorCode, writeFileAtomic } from '../files.js';

export interface SerialAllocator {
  next(): Promise<bigint>;
  /** Resolves once no reservation write is in flight (before closing the data dir). */
  idle?(): Promise<void>;
}

/** Where "every serial ≤ N may have been used" is kept. */
export interface SerialReservations {
  /** 0n when nothing was ever reserved. */
  load(): Promise<bigint>;
  /** Resolves only once `upTo` is durable. */
  save(upTo: bigint): Promise<void>;
}

export interface SerialOptions {
  /** Serials per reservation (one fsync'ed write per block). Default 1000. */
  blockSize?: number;
  /** The first serial ever handed out. Default 1; never 0 (OpenSSH KRLs treat serial 0 as invalid). */
  serialStart?: bigint;
  /** Serials up to this are known used (e.g. the highest serial in the audit log): start above it. */
  floor?: bigint;
}

const MAX_SERIAL = 2n ** 63n - 1n;

/** A decimal number in a file, replaced atomically and durably. */
export function serialFile(file: string): SerialReservations {
  return {
    async load() {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (e) {
        if (errorCode(e) === 'ENOENT') return 0n;
        throw new JitError('unavailable', `cannot read serial reservation: ${errorCode(e)}`, { cause: e });
      }
      if (!/^\d{1,19}\n?$/.test(text)) throw new JitError('internal', `serial reservation file ${file} is corrupt`);
      return BigInt(text.trim());
    },
    save: (upTo) => writeFileAtomic(file, `${upTo}\n`),
  };
}

class BlockSerialAllocator implements SerialAllocator {
  private nextSerial: bigint;
  private blockEnd: bigint;
  private reserving: Promise<void> | undefined;

  constructor(
    private readonly store: SerialReservations,
    private readonly blockSize: bigint,
    first: bigint,
  ) {
    this.nextSerial = first;
    this.blockEnd = first - 1n; // empty: the first next() reserves
  }

  async next(): Promise<bigint> {
    while (this.nextSerial > this.blockEnd) {
      // One reservation in flight; everyone who ran dry waits for it.
      this.reserving ??= this.reserve().finally(() => {
        this.reserving = undefined;
      });
      await this.reserving;
    }
    const serial = this.nextSerial++;
    if (!this.reserving && (this.blockEnd - this.nextSerial) * 2n < this.blockSize) {
      // Ahead of need: a failure here is retried (and reported) by whoever runs dry.
      this.reserving = this.reserve()
        .catch(() => undefined)
        .finally(() => {
          this.reserving = undefined;
        });
    }
    return serial;
  }

  async idle(): Promise<void> {
    while (this.reserving) await this.reserving.catch(() => undefined);
  }

  private async reserve(): Promise<void> {
    const from = this.blockEnd > this.nextSerial - 1n ? this.blockEnd : this.nextSerial - 1n;
    const upTo = from + this.blockSize;
    if (upTo > MAX_SERIAL) throw new JitError('unavailable', 'certificate serials exhausted');
    try {
      await this.store.save(upTo);
    } catch (e) {
      throw new JitError('unavailable', `cannot reserve certificate serials: ${errorCode(e)}`, { cause: e });
    }
    this.blockEnd = upTo;
  }
}

export async function openSerialAllocator(
  store: SerialReservations | string,
  opts: SerialOptions = {},
): Promise<SerialAllocator> {
  const reservations = typeof store === 'string' ? serialFile(store) : store;
  const blockSize = BigInt(opts.blockSize ?? 1000);
  const start = opts.serialStart ?? 1n;
  if (blockSize < 1n) throw new JitError('invalid_config', 'serial block size must be ≥ 1');
  if (start < 1n || start > MAX_SERIAL) throw new JitError('invalid_config', `serialStart must be between 1 and ${MAX_SERIAL}`);
  const used = [await reservations.load(), opts.floor ?? 0n, start - 1n].reduce((a, b) => (a > b ? a : b));
  return new BlockSerialAllocator(reservations, blockSize, used + 1n);
}
