/**
 * OpenSSH Key Revocation Lists (PROTOCOL.krl), unsigned. Every host's sshd reads this file on
 * each login and refuses *every* key when it cannot parse it, so the encoder validates its
 * input and only writes what OpenSSH's own parser accepts. Output is canonical: the same set
 * of revocations always gives the same bytes (cheap ETags, meaningful diffs).
 */
import { JitError } from '../errors.js';
import { decodeKeyBlob } from './keys.js';
import { WireReader, WireWriter, type WireFault } from './wire.js';

/** A KRL that is short or too long is bad input, like every other KRL problem here. */
const KRL_DATA: WireFault = { code: 'bad_request', what: 'KRL' };

export interface KrlCertificates {
  /** CA public key blob whose certificates are revoked; null = certificates of any CA. */
  caKey: Buffer | null;
  serials?: bigint[];
  /** Inclusive [min, max]. */
  serialRanges?: Array<[bigint, bigint]>;
  keyIds?: string[];
}

export interface KrlInput {
  /** Grows with every change; hosts and caches compare it. */
  version: bigint;
  /** Seconds since the epoch. */
  generatedDate: bigint;
  comment?: string;
  certificates: KrlCertificates[];
  /** Plain public key blobs revoked outright (also revokes certificates for those keys). */
  explicitKeys?: Buffer[];
  /** sha256 of public key blobs. */
  sha256Keys?: Buffer[];
}

export interface ParsedKrl extends KrlInput {
  comment: string;
  certificates: Array<Required<KrlCertificates>>;
  explicitKeys: Buffer[];
  sha256Keys: Buffer[];
  sha1Keys: Buffer[];
}

const MAGIC = Buffer.from('SSHKRL\n\0', 'latin1');
const FORMAT_VERSION = 1;

const SECTION_CERTIFICATES = 1;
const SECTION_EXPLICIT_KEY = 2;
const SECTION_FINGERPRINT_SHA1 = 3;
const SECTION_SIGNATURE = 4;
const SECTION_FINGERPRINT_SHA256 = 5;

const CERT_SERIAL_LIST = 0x20;
const CERT_SERIAL_RANGE = 0x21;
const CERT_SERIAL_BITMAP = 0x22;
const CERT_KEY_ID = 0x23;

const U64_MAX = (1n << 64n) - 1n;
/** Bounds the work parseKrl does for a bitmap section (it expands bits into serials). */
const MAX_BITMAP_BYTES = 64 * 1024;

function bad(message: string): never {
  throw new JitError('bad_request', message);
}

function checkU64(v: bigint, what: string): void {
  if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) bad(`${what} must be a bigint in 0..2^64-1`);
}

/** OpenSSH reads these with sshbuf_get_cstring, which refuses embedded NULs. */
function checkCString(s: string, what: string): void {
  if (typeof s !== 'string' || s.includes('\0')) bad(`${what} must be a string without NUL characters`);
}

function checkPlainKey(blob: Buffer, what: string): void {
  if (!Buffer.isBuffer(blob)) bad(`${what} must be a public key blob`);
  // sshd parses CA keys fully and drops the whole KRL if one is malformed; a certificate
  // blob among explicit keys would silently never match (OpenSSH compares plain keys).
  decodeKeyBlob(blob);
}

/** Sorted, merged [lo, hi] intervals: overlapping or adjacent ones become one. */
function mergeSerials(serials: readonly bigint[], ranges: ReadonlyArray<readonly [bigint, bigint]>): Array<[bigint, bigint]> {
  const all: Array<[bigint, bigint]> = [];
  for (const s of serials) {
    checkU64(s, 'serial');
    // OpenSSH never revokes serial 0 (it means "no serial") and refuses KRLs that try.
    if (s === 0n) bad('serial 0 cannot be revoked (it means "no serial" to OpenSSH)');
    all.push([s, s]);
  }
  for (const r of ranges) {
    if (!Array.isArray(r) || r.length !== 2) bad('serial range must be [min, max]');
    const [lo, hi] = r;
    checkU64(lo, 'serial range start');
    checkU64(hi, 'serial range end');
    if (lo === 0n) bad('serial range cannot include serial 0');
    if (lo > hi) bad(`serial range ${lo}..${hi} is empty (start > end)`);
    all.push([lo, hi]);
  }
  all.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: Array<[bigint, bigint]> = [];
  for (const [lo, hi] of all) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1n) {
      if (hi > last[1]) last[1] = hi;
    } else {
      out.push([lo, hi]);
    }
  }
  return out;
}

/**
 * Serial subsections in ascending order. A run of one or two serials is cheaper in a list
 * (8 bytes each) than as a range (16 bytes + subsection header); longer runs become ranges,
 * one per subsection, as PROTOCOL.krl defines them.
 */
function writeSerials(w: WireWriter, intervals: Array<[bigint, bigint]>): void {
  let list: bigint[] = [];
  const flushList = () => {
    if (list.length === 0) return;
    const sub = new WireWriter();
    for (const s of list) sub.uint64(s);
    w.byte(CERT_SERIAL_LIST).string(sub.toBuffer());
    list = [];
  };
  for (const [lo, hi] of intervals) {
    if (hi - lo < 2n) {
      for (let s = lo; s <= hi; s++) list.push(s);
    } else {
      flushList();
      w.byte(CERT_SERIAL_RANGE).string(new WireWriter().uint64(lo).uint64(hi).toBuffer());
    }
  }
  flushList();
}

function sortedUnique(bufs: readonly Buffer[]): Buffer[] {
  const out = [...bufs].sort(Buffer.compare);
  return out.filter((b, i) => i === 0 || !b.equals(out[i - 1]));
}

function blobSection(w: WireWriter, type: number, blobs: Buffer[]): void {
  if (blobs.length === 0) return;
  const sub = new WireWriter();
  for (const b of blobs) sub.string(b);
  w.byte(type).string(sub.toBuffer());
}

/** Encodes an unsigned KRL. Throws bad_request/invalid_key for input OpenSSH would not load. */
export function encodeKrl(input: KrlInput): Buffer {
  checkU64(input.version, 'KRL version');
  checkU64(input.generatedDate, 'KRL generated date');
  const comment = input.comment ?? '';
  checkCString(comment, 'KRL comment');
  if (!Array.isArray(input.certificates)) bad('KRL certificates must be an array');

  // One section per CA (entries for the same CA are merged), ordered by key blob, wildcard first.
  const byCa = new Map<string, { caKey: Buffer | null; serials: bigint[]; ranges: Array<[bigint, bigint]>; keyIds: string[] }>();
  for (const c of input.certificates) {
    if (c.caKey !== null) checkPlainKey(c.caKey, 'certificate CA key');
    const id = c.caKey === null ? '' : c.caKey.toString('hex');
    const e = byCa.get(id) ?? { caKey: c.caKey, serials: [], ranges: [], keyIds: [] };
    e.serials.push(...(c.serials ?? []));
    e.ranges.push(...(c.serialRanges ?? []));
    e.keyIds.push(...(c.keyIds ?? []));
    byCa.set(id, e);
  }

  const w = new WireWriter()
    .raw(MAGIC)
    .uint32(FORMAT_VERSION)
    .uint64(input.version)
    .uint64(input.generatedDate)
    .uint64(0n) // flags: none defined
    .string('') // reserved
    .string(comment);

  for (const id of [...byCa.keys()].sort()) {
    const e = byCa.get(id)!;
    const sect = new WireWriter().string(e.caKey ?? Buffer.alloc(0)).string('');
    writeSerials(sect, mergeSerials(e.serials, e.ranges));
    e.keyIds.forEach((k) => checkCString(k, 'key ID'));
    // Byte order, as OpenSSH's strcmp-ordered tree writes them.
    const keyIds = sortedUnique(e.keyIds.map((k) => Buffer.from(k, 'utf8')));
    blobSection(sect, CERT_KEY_ID, keyIds);
    const body = sect.toBuffer();
    // A section with only a CA key revokes nothing; leave it out rather than confuse readers.
    if (body.length > 8 + (e.caKey?.length ?? 0)) w.byte(SECTION_CERTIFICATES).string(body);
  }

  const explicit = input.explicitKeys ?? [];
  explicit.forEach((k) => checkPlainKey(k, 'explicitly revoked key'));
  blobSection(w, SECTION_EXPLICIT_KEY, sortedUnique(explicit));

  const hashes = input.sha256Keys ?? [];
  for (const h of hashes) if (!Buffer.isBuffer(h) || h.length !== 32) bad('sha256 key hash must be 32 bytes');
  blobSection(w, SECTION_FINGERPRINT_SHA256, sortedUnique(hashes));

  return w.toBuffer();
}

function readBlobs(r: WireReader, what: string, size?: number): Buffer[] {
  const out: Buffer[] = [];
  while (r.remaining > 0) {
    const b = Buffer.from(r.string(what));
    if (size !== undefined && b.length !== size) bad(`${what} must be ${size} bytes, got ${b.length}`);
    out.push(b);
  }
  return out;
}

function parseCertSection(body: Buffer): Required<KrlCertificates> {
  const r = new WireReader(body, KRL_DATA);
  const ca = Buffer.from(r.string('CA key'));
  r.string('certificate section reserved field');
  const out: Required<KrlCertificates> = {
    caKey: ca.length === 0 ? null : ca,
    serials: [],
    serialRanges: [],
    keyIds: [],
  };
  if (out.caKey) checkPlainKey(out.caKey, 'KRL CA key');
  while (r.remaining > 0) {
    const type = r.byte('certificate subsection type');
    const sub = new WireReader(r.string('certificate subsection'), KRL_DATA);
    switch (type) {
      case CERT_SERIAL_LIST:
        while (sub.remaining > 0) out.serials.push(sub.uint64('serial'));
        break;
      case CERT_SERIAL_RANGE: {
        const lo = sub.uint64('serial range start');
        const hi = sub.uint64('serial range end');
        if (lo > hi) bad(`KRL serial range ${lo}..${hi} has start > end`);
        out.serialRanges.push([lo, hi]);
        break;
      }
      case CERT_SERIAL_BITMAP: {
        const offset = sub.uint64('bitmap offset');
        const bits = sub.string('bitmap');
        if (bits.length > MAX_BITMAP_BYTES) bad('KRL serial bitmap is too large to expand');
        if (bits.length > 0 && bits[0] & 0x80) bad('KRL serial bitmap is negative');
        // mpint, big-endian: bit i (from the least significant end) revokes offset + i.
        for (let i = 0; i < bits.length * 8; i++) {
          const byte = bits[bits.length - 1 - (i >> 3)];
          if (byte & (1 << (i & 7))) {
            const s = offset + BigInt(i);
            if (s > U64_MAX) bad('KRL serial bitmap wraps past 2^64');
            out.serials.push(s);
          }
        }
        break;
      }
      case CERT_KEY_ID:
        while (sub.remaining > 0) out.keyIds.push(sub.utf8('key ID'));
        break;
      default:
        bad(`unsupported KRL certificate subsection type 0x${type.toString(16)}`);
    }
    sub.end('KRL certificate subsection');
  }
  return out;
}

/** Decodes a KRL for tests, debugging and `jit-sshd krl` inspection. Refuses anything malformed. */
export function parseKrl(buf: Buffer): ParsedKrl {
  if (!Buffer.isBuffer(buf) || buf.length < MAGIC.length || !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    bad('not an OpenSSH KRL (bad magic)');
  }
  const r = new WireReader(buf, KRL_DATA);
  r.bytes(MAGIC.length);
  const format = r.uint32('KRL format version');
  if (format !== FORMAT_VERSION) bad(`unsupported KRL format version ${format}`);
  const out: ParsedKrl = {
    version: r.uint64('KRL version'),
    generatedDate: r.uint64('KRL generated date'),
    comment: '',
    certificates: [],
    explicitKeys: [],
    sha256Keys: [],
    sha1Keys: [],
  };
  r.uint64('KRL flags');
  r.string('KRL reserved field');
  out.comment = r.utf8('KRL comment');
  while (r.remaining > 0) {
    const type = r.byte('KRL section type');
    const body = r.string('KRL section');
    switch (type) {
      case SECTION_CERTIFICATES:
        out.certificates.push(parseCertSection(body));
        break;
      case SECTION_EXPLICIT_KEY:
        out.explicitKeys.push(...readBlobs(new WireReader(body, KRL_DATA), 'revoked key'));
        break;
      case SECTION_FINGERPRINT_SHA1:
        out.sha1Keys.push(...readBlobs(new WireReader(body, KRL_DATA), 'SHA1 key hash', 20));
        break;
      case SECTION_FINGERPRINT_SHA256:
        out.sha256Keys.push(...readBlobs(new WireReader(body, KRL_DATA), 'SHA256 key hash', 32));
        break;
      case SECTION_SIGNATURE:
        return bad('signed KRLs are not supported');
      default:
        bad(`unsupported KRL section type ${type}`);
    }
  }
  return out;
}
