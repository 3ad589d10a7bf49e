/**
 * Pure translations between PKCS#11 key attributes and SSH wire blobs: which curve a
 * CKA_EC_PARAMS names, the DER wrapping of CKA_EC_POINT, RSA's modulus/exponent.
 */
import { JitError } from '../errors.js';
import { WireWriter } from '../ca/wire.js';
import type { CaKeyType } from '../policy/config-schema.js';

/** DER OIDs as tokens store them in CKA_EC_PARAMS. */
const EC_PARAMS = {
  ed25519: Buffer.from('06032b6570', 'hex'),
  nistp256: Buffer.from('06082a8648ce3d030107', 'hex'),
  nistp384: Buffer.from('06052b81040022', 'hex'),
  nistp521: Buffer.from('06052b81040023', 'hex'),
} as const;
/** Some tokens name Ed25519 by its printable curve name instead of the OID. */
const ED25519_PRINTABLE = Buffer.from('130c656477617264733235353139', 'hex');

export type TokenCurve = keyof typeof EC_PARAMS;

export function curveOfCaKeyType(type: Exclude<CaKeyType, 'rsa'>): TokenCurve {
  return type === 'ed25519' ? 'ed25519' : (`nistp${type.slice('ecdsa-p'.length)}` as TokenCurve);
}

export function ecParamsOf(curve: TokenCurve): Buffer {
  return EC_PARAMS[curve];
}

export function curveOfEcParams(params: Buffer): TokenCurve {
  if (params.equals(ED25519_PRINTABLE)) return 'ed25519';
  for (const [name, der] of Object.entries(EC_PARAMS)) if (params.equals(der)) return name as TokenCurve;
  throw new JitError('invalid_config', `token key uses an unsupported curve (CKA_EC_PARAMS ${params.toString('hex').slice(0, 40)})`);
}

/** CKA_EC_POINT is a DER OCTET STRING around the point; a few tokens store the bare point. */
export function unwrapEcPoint(value: Buffer, expectedLength: number): Buffer {
  if (value.length === expectedLength) return value;
  if (value[0] === 0x04) {
    let len = value[1];
    let off = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n < 1 || n > 2) throw new JitError('invalid_config', 'token key has a malformed CKA_EC_POINT');
      len = n === 1 ? value[2] : value.readUInt16BE(2);
      off = 2 + n;
    }
    if (len === expectedLength && off + len === value.length) return value.subarray(off);
  }
  throw new JitError('invalid_config', `token key has a CKA_EC_POINT of unexpected length ${value.length}`);
}

const POINT_LENGTH: Record<TokenCurve, number> = { ed25519: 32, nistp256: 65, nistp384: 97, nistp521: 133 };

/** SSH public-key blob from an EC or Edwards key's CKA_EC_PARAMS and CKA_EC_POINT. */
export function ecBlob(params: Buffer, point: Buffer): Buffer {
  const curve = curveOfEcParams(params);
  const raw = unwrapEcPoint(point, POINT_LENGTH[curve]);
  if (curve === 'ed25519') return new WireWriter().string('ssh-ed25519').string(raw).toBuffer();
  if (raw[0] !== 0x04) throw new JitError('invalid_config', 'token key has a compressed EC point');
  return new WireWriter().string(`ecdsa-sha2-${curve}`).string(curve).string(raw).toBuffer();
}

export function rsaBlob(modulus: Buffer, exponent: Buffer): Buffer {
  return new WireWriter().string('ssh-rsa').mpint(exponent).mpint(modulus).toBuffer();
}
