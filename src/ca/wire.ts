/**
 * SSH wire encoding (RFC 4251 §5): uint32, uint64, string, mpint, name-lists.
 * Pure and allocation-light: the writer collects chunks and concatenates once.
 */
import { JitError, type ErrorCode } from '../errors.js';

export class WireWriter {
  // One growing buffer written in place: certificates are built on the issuance hot path, and
  // a small allocation per field showed up in profiles.
  private buf: Buffer;
  private size = 0;

  constructor(initialCapacity = 256) {
    this.buf = Buffer.allocUnsafe(initialCapacity);
  }

  private ensure(extra: number): void {
    const need = this.size + extra;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = Buffer.allocUnsafe(cap);
    this.buf.copy(next, 0, 0, this.size);
    this.buf = next;
  }

  raw(bytes: Uint8Array): this {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.size);
    this.size += bytes.length;
    return this;
  }

  byte(n: number): this {
    this.ensure(1);
    this.buf[this.size++] = n & 0xff;
    return this;
  }

  uint32(n: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(n >>> 0, this.size);
    this.size += 4;
    return this;
  }

  uint64(n: bigint): this {
    this.ensure(8);
    this.buf.writeBigUInt64BE(BigInt.asUintN(64, n), this.size);
    this.size += 8;
    return this;
  }

  /** An SSH `string`: uint32 length + bytes. Strings are written as UTF-8. */
  string(s: Uint8Array | string): this {
    if (typeof s !== 'string') return this.uint32(s.length).raw(s);
    const len = Buffer.byteLength(s, 'utf8');
    this.uint32(len);
    this.ensure(len);
    this.buf.write(s, this.size, len, 'utf8');
    this.size += len;
    return this;
  }

  /** An mpint from unsigned big-endian magnitude bytes (leading zeros stripped, sign byte added). */
  mpint(magnitude: Uint8Array): this {
    let i = 0;
    while (i < magnitude.length && magnitude[i] === 0) i++;
    const m = magnitude.subarray(i);
    const pad = m.length > 0 && (m[0] & 0x80) !== 0 ? 1 : 0;
    this.uint32(m.length + pad);
    if (pad) this.byte(0);
    return this.raw(m);
  }

  /** Starts an SSH `string` whose length is filled in by endString (no nested writer needed). */
  beginString(): number {
    const at = this.size;
    return this.uint32(0), at;
  }

  endString(at: number): this {
    this.buf.writeUInt32BE(this.size - at - 4, at);
    return this;
  }

  get length(): number {
    return this.size;
  }

  /** A view of bytes written so far; valid until the next write. */
  view(start = 0, end = this.size): Buffer {
    return this.buf.subarray(start, end);
  }

  /** A copy of what was written (the writer may be reused or dropped). */
  toBuffer(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.size));
  }
}

/** What a reader throws when the data is short or too long: the caller's error code and subject. */
export interface WireFault {
  code: ErrorCode;
  /** what is being read, e.g. 'key blob': messages say "malformed key blob: …" */
  what: string;
}

export class WireReader {
  private off = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly fault: WireFault,
  ) {}

  /** A reader of a part of this data (a nested string), failing the same way. */
  sub(buf: Buffer): WireReader {
    return new WireReader(buf, this.fault);
  }

  get offset(): number {
    return this.off;
  }

  get remaining(): number {
    return this.buf.length - this.off;
  }

  private need(n: number, what: string): void {
    if (n < 0 || this.off + n > this.buf.length) {
      throw new JitError(this.fault.code, `malformed ${this.fault.what}: truncated SSH data while reading ${what}`);
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
      throw new JitError(this.fault.code, `malformed ${this.fault.what}: trailing bytes after ${what}`);
    }
  }
}
