/**
 * SSH wire encoding (RFC 4251 §5): uint32, uint64, string, mpint, name-lists.
 * Pure and allocation-light: the writer collects chunks and concatenates once.
 */
import { JitError } from '../errors.js';

export class WireWriter {
  private chunks: Buffer[] = [];
  private size = 0;

  raw(buf: Uint8Array): this {
    const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    this.chunks.push(b);
    this.size += b.length;
    return this;
  }

  byte(n: number): this {
    return this.raw(Buffer.of(n & 0xff));
  }

  uint32(n: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(n >>> 0, 0);
    return this.raw(b);
  }

  uint64(n: bigint): this {
    const b = Buffer.allocUnsafe(8);
    b.writeBigUInt64BE(BigInt.asUintN(64, n), 0);
    return this.raw(b);
  }

  /** An SSH `string`: uint32 length + bytes. Strings are written as UTF-8. */
  string(s: Uint8Array | string): this {
    const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
    this.uint32(b.length);
    return this.raw(b);
  }

  /** An mpint from unsigned big-endian magnitude bytes (leading zeros stripped, sign byte added). */
  mpint(magnitude: Uint8Array): this {
    let i = 0;
    while (i < magnitude.length && magnitude[i] === 0) i++;
    let m = Buffer.from(magnitude.subarray(i));
    if (m.length > 0 && (m[0] & 0x80) !== 0) m = Buffer.concat([Buffer.of(0), m]);
    return this.string(m);
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }
}

export class WireReader {
  private off = 0;
  constructor(private readonly buf: Buffer) {}

  get offset(): number {
    return this.off;
  }

  get remaining(): number {
    return this.buf.length - this.off;
  }

  private need(n: number, what: string): void {
    if (n < 0 || this.off + n > this.buf.length) {
      throw new JitError('bad_request', `truncated SSH data while reading ${what}`);
    }
  }

  byte(what = 'byte'): number {
    this.need(1, what);
    return this.buf[this.off++];
  }

  uint32(what = 'uint32'): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }

  uint64(what = 'uint64'): bigint {
    this.need(8, what);
    const v = this.buf.readBigUInt64BE(this.off);
    this.off += 8;
    return v;
  }

  bytes(n: number, what = 'bytes'): Buffer {
    this.need(n, what);
    const v = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }

  string(what = 'string'): Buffer {
    const n = this.uint32(what);
    return this.bytes(n, what);
  }

  utf8(what = 'string'): string {
    return this.string(what).toString('utf8');
  }

  /** The rest of the buffer (e.g. a key's fields after its type string). */
  rest(): Buffer {
    const v = this.buf.subarray(this.off);
    this.off = this.buf.length;
    return v;
  }

  /** Throws if anything is left: trailing garbage is refused everywhere. */
  end(what = 'data'): void {
    if (this.off !== this.buf.length) {
      throw new JitError('bad_request', `trailing bytes after ${what}`);
    }
  }
}

/** Encodes a list of SSH strings (principals) as the concatenation used inside a cert. */
export function encodeStringList(items: readonly string[]): Buffer {
  const w = new WireWriter();
  for (const s of items) w.string(s);
  return w.toBuffer();
}
