/**
 * Users' SSH public keys: strict parsing of the wire blob, the accepted-type list and
 * fingerprints. Strict because the blob is also our identity for a key (fingerprints,
 * "equal to a CA key", revocation by key): a non-canonical encoding of the same key must
 * not slip past those checks, so anything OpenSSH would not write itself is refused.
 */
import { createPublicKey, hash as sha } from 'node:crypto';
import { JitError } from '../errors.js';
import { WireReader, type WireFault } from './wire.js';

/** Key bytes that are short or too long are an invalid key. */
const KEY_BLOB: WireFault = { code: 'invalid_key', what: 'key blob' };

export interface ParsedKey {
  type: string;
  /** The canonical SSH wire blob (exactly what the line's base64 decoded to). */
  blob: Buffer;
  comment?: string;
  fingerprint: string;
  /** RSA modulus size, ECDSA curve size, 256 for ed25519. */
  bits?: number;
}

export interface ParsePublicKeyOptions {
  /** Smallest accepted RSA modulus; 3072 unless configured (minRsaBits). */
  minRsaBits?: number;
  /** CA public key blobs: a user key equal to one of them is refused. */
  caKeys?: readonly Buffer[];
}

/** The fields of a key blob, decoded. Shared with the signer, certificates and SSHSIG. */
export type KeyFields =
  | { type: 'ssh-ed25519'; publicKey: Buffer }
  | { type: 'sk-ssh-ed25519@openssh.com'; publicKey: Buffer; application: string }
  | { type: EcdsaType; curve: Curve; point: Buffer }
  | { type: 'sk-ecdsa-sha2-nistp256@openssh.com'; curve: 'nistp256'; point: Buffer; application: string }
  | { type: 'ssh-rsa'; e: Buffer; n: Buffer; bits: number };

export type Curve = 'nistp256' | 'nistp384' | 'nistp521';
export type EcdsaType = `ecdsa-sha2-${Curve}`;

/** Curve facts: coordinate size, JWK name, hash for signatures. */
export const CURVES: Record<Curve, { size: number; jwk: string; hash: string; bits: number }> = {
  nistp256: { size: 32, jwk: 'P-256', hash: 'sha256', bits: 256 },
  nistp384: { size: 48, jwk: 'P-384', hash: 'sha384', bits: 384 },
  nistp521: { size: 66, jwk: 'P-521', hash: 'sha512', bits: 521 },
};

export const KEY_TYPES = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
  'ssh-rsa',
] as const;

/** What a CA key may be, as the config names it (caKeyType): plain ed25519, ECDSA, RSA. */
export const CA_KEY_TYPES = ['ed25519', 'ecdsa-p256', 'ecdsa-p384', 'ecdsa-p521', 'rsa'] as const;
export type CaKeyType = (typeof CA_KEY_TYPES)[number];

/** The SSH key type of each CA key kind: the one list of key types a CA may hold (no security keys, no DSA). */
export const CA_SSH_KEY_TYPE: Readonly<Record<CaKeyType, (typeof KEY_TYPES)[number]>> = {
  ed25519: 'ssh-ed25519',
  'ecdsa-p256': 'ecdsa-sha2-nistp256',
  'ecdsa-p384': 'ecdsa-sha2-nistp384',
  'ecdsa-p521': 'ecdsa-sha2-nistp521',
  rsa: 'ssh-rsa',
};

const MAX_LINE = 16 * 1024;
/** Past this an RSA key is a denial-of-service vector, not a key (OpenSSH's own cap). */
const MAX_RSA_BITS = 16384;
const MAX_APPLICATION = 1024;

function bad(message: string): never {
  throw new JitError('invalid_key', message);
}

/** 'SHA256:' + unpadded base64 of sha256(blob), as ssh-keygen -l prints it. */
export function fingerprintOf(blob: Buffer): string {
  return 'SHA256:' + sha('sha256', blob, 'base64').replace(/=+$/, '');
}

/**
 * Reads a minimal, non-negative mpint: OpenSSH never writes a redundant leading zero, and a
 * second spelling of the same number would give the same key a second fingerprint.
 */
function readPositiveMpint(r: WireReader, what: string): Buffer {
  const b = r.string(what);
  if (b.length === 0) bad(`${what} is zero`);
  if (b[0] & 0x80) bad(`${what} is negative`);
  if (b[0] === 0 && (b.length === 1 || (b[1] & 0x80) === 0)) bad(`${what} has a redundant leading zero`);
  return b[0] === 0 ? b.subarray(1) : b;
}

function bitLength(magnitude: Buffer): number {
  return magnitude.length === 0 ? 0 : (magnitude.length - 1) * 8 + (32 - Math.clz32(magnitude[0]));
}

function readApplication(r: WireReader): string {
  const app = r.string('security key application');
  if (app.length === 0 || app.length > MAX_APPLICATION) bad('security key application has a bad length');
  return app.toString('utf8');
}

function checkEcPoint(curve: Curve, point: Buffer): void {
  const { size, jwk } = CURVES[curve];
  if (point.length !== 1 + 2 * size || point[0] !== 0x04) {
    bad(`ECDSA ${curve} point must be ${1 + 2 * size} bytes, uncompressed (0x04…), got ${point.length}`);
  }
  try {
    // OpenSSL refuses points that are not on the curve.
    createPublicKey({
      key: {
        kty: 'EC',
        crv: jwk,
        x: point.subarray(1, 1 + size).toString('base64url'),
        y: point.subarray(1 + size).toString('base64url'),
      },
      format: 'jwk',
    });
  } catch {
    bad(`ECDSA ${curve} point is not on the curve`);
  }
}

/**
 * Reads the fields of a key of the given type from r (no type string; that has been read).
 * Used for plain key blobs and for the key part inside certificates.
 */
export function readKeyFields(r: WireReader, type: string): KeyFields {
  switch (type) {
    case 'ssh-ed25519':
    case 'sk-ssh-ed25519@openssh.com': {
      const publicKey = r.string('ed25519 public key');
      if (publicKey.length !== 32) bad(`ed25519 public key must be 32 bytes, got ${publicKey.length}`);
      if (type === 'ssh-ed25519') return { type, publicKey };
      return { type, publicKey, application: readApplication(r) };
    }
    case 'ecdsa-sha2-nistp256':
    case 'ecdsa-sha2-nistp384':
    case 'ecdsa-sha2-nistp521':
    case 'sk-ecdsa-sha2-nistp256@openssh.com': {
      const expected = type.startsWith('sk-') ? 'nistp256' : (type.slice('ecdsa-sha2-'.length) as Curve);
      const curve = r.utf8('ECDSA curve name');
      if (curve !== expected) bad(`ECDSA curve name '${curve.slice(0, 32)}' does not match key type ${type}`);
      const point = r.string('ECDSA point');
      checkEcPoint(expected, point);
      if (type === 'sk-ecdsa-sha2-nistp256@openssh.com') {
        return { type, curve: 'nistp256', point, application: readApplication(r) };
      }
      return { type, curve: expected, point };
    }
    case 'ssh-rsa': {
      const e = readPositiveMpint(r, 'RSA exponent');
      const n = readPositiveMpint(r, 'RSA modulus');
      const bits = bitLength(n);
      if (bits > MAX_RSA_BITS) bad(`RSA key of ${bits} bits is larger than the ${MAX_RSA_BITS}-bit maximum`);
      if ((e[e.length - 1] & 1) === 0 || (e.length === 1 && e[0] < 3)) bad('RSA exponent must be odd and at least 3');
      if ((n[n.length - 1] & 1) === 0) bad('RSA modulus must be odd');
      return { type, e, n, bits };
    }
    case 'ssh-dss':
      return bad('DSA keys are not accepted (ssh-dss is obsolete and insecure)');
    default:
      if (type.includes('-cert-v01@openssh.com')) bad(`a certificate (${type}) is not a public key`);
      return bad(`unsupported key type '${type.slice(0, 64)}'`);
  }
}

/** Decodes a complete public-key blob strictly: known type, exact field sizes, no trailing bytes. */
export function decodeKeyBlob(blob: Buffer): KeyFields {
  const r = new WireReader(blob, KEY_BLOB);
  const type = r.utf8('key type');
  const fields = readKeyFields(r, type);
  r.end('key blob');
  return fields;
}

export function keyBits(k: KeyFields): number {
  if (k.type === 'ssh-rsa') return k.bits;
  if ('curve' in k) return CURVES[k.curve].bits;
  return 256;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Parses one `type base64 [comment]` line (no authorized_keys options) and applies the
 * acceptance rules for requester keys (docs/security.md): accepted types only, RSA ≥ floor, never a CA key.
 */
export function parsePublicKey(line: string, opts: ParsePublicKeyOptions = {}): ParsedKey {
  if (typeof line !== 'string') bad('public key must be a string');
  if (line.length > MAX_LINE) bad(`public key line is longer than ${MAX_LINE} characters`);
  const text = line.trim();
  if (text === '') bad('public key is empty');
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(text)) bad('public key must be a single line without control characters');
  const [type, b64, ...commentWords] = text.split(/[ \t]+/);
  if (b64 === undefined) bad('public key line needs "<type> <base64>"');
  if (b64.length % 4 !== 0 || !BASE64.test(b64)) bad('public key base64 is malformed');
  const blob = Buffer.from(b64, 'base64');
  // A base64 string with non-zero padding bits decodes "fine": insist on the canonical form.
  if (blob.toString('base64') !== b64) bad('public key base64 is not canonical');

  const fields = decodeKeyBlob(blob);
  if (fields.type !== type) bad(`key line says '${type.slice(0, 64)}' but the blob is '${fields.type}'`);

  const minRsaBits = opts.minRsaBits ?? 3072;
  if (fields.type === 'ssh-rsa' && fields.bits < minRsaBits) {
    bad(`RSA key of ${fields.bits} bits is shorter than the ${minRsaBits}-bit minimum`);
  }
  if (opts.caKeys?.some((ca) => ca.equals(blob))) bad('this key is a CA key and cannot be certified');

  const comment = commentWords.join(' ');
  return {
    type: fields.type,
    blob,
    ...(comment ? { comment } : {}),
    fingerprint: fingerprintOf(blob),
    bits: keyBits(fields),
  };
}

/** `type base64 comment` for a blob, as written to .pub files and TrustedUserCAKeys. */
export function publicKeyLine(blob: Buffer, comment?: string): string {
  const type = new WireReader(blob, KEY_BLOB).utf8('key type');
  return `${type} ${blob.toString('base64')}${comment ? ` ${comment}` : ''}`;
}
