/**
 * CA key → Signer, and verification of SSH signature blobs. Everything per key (blob, line,
 * fingerprint, algorithm choice) is computed once in createSigner: sign() is on the hot path.
 */
import { createHash, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { JitError } from '../errors.js';
import type { Signer } from './types.js';
import { CURVES, type Curve, decodeKeyBlob, fingerprintOf, type KeyFields } from './keys.js';
import { WireReader, WireWriter, type WireFault } from './wire.js';

/** Signature bytes that are short or too long are an invalid signature. */
const SIGNATURE: WireFault = { code: 'invalid_signature', what: 'signature' };

/** A CA key below this is refused outright, whatever the user-key floor is. */
const MIN_CA_RSA_BITS = 2048;

const JWK_CURVES: Record<string, Curve> = { 'P-256': 'nistp256', 'P-384': 'nistp384', 'P-521': 'nistp521' };

function b64u(s: string | undefined, what: string): Buffer {
  if (!s) throw new JitError('invalid_key', `CA key export lacks ${what}`);
  return Buffer.from(s, 'base64url');
}

/** SSH public-key blob of a node KeyObject (public or private), built from its JWK export. */
export function publicKeyBlobOf(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (key.asymmetricKeyType === 'ed25519') {
    return new WireWriter().string('ssh-ed25519').string(b64u(jwk.x, 'x')).toBuffer();
  }
  if (key.asymmetricKeyType === 'ec') {
    const curve = JWK_CURVES[jwk.crv ?? ''];
    if (!curve) throw new JitError('invalid_key', `unsupported ECDSA curve ${jwk.crv}`);
    const point = Buffer.concat([Buffer.of(4), b64u(jwk.x, 'x'), b64u(jwk.y, 'y')]);
    return new WireWriter().string(`ecdsa-sha2-${curve}`).string(curve).string(point).toBuffer();
  }
  if (key.asymmetricKeyType === 'rsa') {
    return new WireWriter().string('ssh-rsa').mpint(b64u(jwk.e, 'e')).mpint(b64u(jwk.n, 'n')).toBuffer();
  }
  throw new JitError('invalid_key', `unsupported key type ${key.asymmetricKeyType}`);
}

/** ECDSA: P1363 r||s (fixed width) → SSH's string(mpint r + mpint s). */
export function ecdsaSigBlob(name: string, p1363: Buffer): Buffer {
  const half = p1363.length / 2;
  const inner = new WireWriter().mpint(p1363.subarray(0, half)).mpint(p1363.subarray(half)).toBuffer();
  return new WireWriter().string(name).string(inner).toBuffer();
}

export function createSigner(privateKey: KeyObject, comment = 'jit-ssh-ca'): Signer {
  if (privateKey.type !== 'private') throw new JitError('invalid_key', 'a CA signer needs a private key');
  const publicKeyBlob = publicKeyBlobOf(privateKey);
  const fields = decodeKeyBlob(publicKeyBlob);
  const keyType = fields.type;
  const publicKeyLine = `${keyType} ${publicKeyBlob.toString('base64')}${comment ? ` ${comment}` : ''}`;
  const fingerprint = fingerprintOf(publicKeyBlob);

  // Per key type: the digest node's sign() takes, the key argument, and raw signature → SSH blob.
  let alg: string | null;
  let key: KeyObject | { key: KeyObject; dsaEncoding: 'ieee-p1363' };
  let blob: (raw: Buffer) => Buffer;
  if (fields.type === 'ssh-ed25519') {
    const name = new WireWriter().string('ssh-ed25519').toBuffer();
    [alg, key, blob] = [null, privateKey, (raw) => new WireWriter().raw(name).string(raw).toBuffer()];
  } else if (fields.type === 'ssh-rsa') {
    if (fields.bits < MIN_CA_RSA_BITS) {
      throw new JitError('invalid_key', `RSA CA key of ${fields.bits} bits is below the ${MIN_CA_RSA_BITS}-bit minimum`);
    }
    // Only rsa-sha2-512: OpenSSH ≥ 8.2 refuses SHA-1 ('ssh-rsa') certificate signatures.
    const name = new WireWriter().string('rsa-sha2-512').toBuffer();
    [alg, key, blob] = ['sha512', privateKey, (raw) => new WireWriter().raw(name).string(raw).toBuffer()];
  } else if (fields.type.startsWith('ecdsa-sha2-') && 'curve' in fields) {
    [alg, key, blob] = [CURVES[fields.curve].hash, { key: privateKey, dsaEncoding: 'ieee-p1363' }, (raw) => ecdsaSigBlob(keyType, raw)];
  } else {
    throw new JitError('invalid_key', `unsupported CA key type ${keyType}`);
  }
  return {
    publicKeyBlob,
    keyType,
    publicKeyLine,
    fingerprint,
    sign: (data) => blob(cryptoSign(alg, data, key)),
    signInPool: (data) =>
      new Promise((resolve, reject) => cryptoSign(alg, data, key, (err, raw) => (err ? reject(err) : resolve(blob(raw))))),
  };
}

/** A node KeyObject for an SSH public-key blob (plain ed25519/ECDSA/RSA; sk keys map to their base key). */
export function publicKeyObjectFromBlob(blob: Buffer): KeyObject {
  return keyObjectFromFields(decodeKeyBlob(blob));
}

function keyObjectFromFields(k: KeyFields): KeyObject {
  if (k.type === 'ssh-rsa') {
    return createPublicKey({ key: { kty: 'RSA', n: k.n.toString('base64url'), e: k.e.toString('base64url') }, format: 'jwk' });
  }
  if ('curve' in k) {
    const { size, jwk } = CURVES[k.curve];
    return createPublicKey({
      key: {
        kty: 'EC',
        crv: jwk,
        x: k.point.subarray(1, 1 + size).toString('base64url'),
        y: k.point.subarray(1 + size).toString('base64url'),
      },
      format: 'jwk',
    });
  }
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: k.publicKey.toString('base64url') }, format: 'jwk' });
}

/** Security-key signatures need the user-presence flag, as OpenSSH requires by default. */
const SK_USER_PRESENT = 0x01;

/**
 * Verifies an SSH signature blob (string alg + string sig [+ sk flags/counter]) over data by
 * the key in publicKeyBlob. Returns false for any bad or mismatched signature; throws
 * JitError('invalid_key') only when the public key itself is unusable. RSA accepts
 * rsa-sha2-256/512, never SHA-1.
 */
export function verifySshSignature(publicKeyBlob: Buffer, data: Buffer, sigBlob: Buffer): boolean {
  const k = decodeKeyBlob(publicKeyBlob);
  const key = keyObjectFromFields(k);
  try {
    const r = new WireReader(sigBlob, SIGNATURE);
    const alg = r.utf8('signature algorithm');
    const sig = r.string('signature');
    switch (k.type) {
      case 'ssh-ed25519':
        r.end();
        return alg === k.type && sig.length === 64 && cryptoVerify(null, data, key, sig);
      case 'ssh-rsa': {
        r.end();
        const hash = alg === 'rsa-sha2-512' ? 'sha512' : alg === 'rsa-sha2-256' ? 'sha256' : undefined;
        return hash !== undefined && cryptoVerify(hash, data, key, sig);
      }
      case 'sk-ssh-ed25519@openssh.com':
      case 'sk-ecdsa-sha2-nistp256@openssh.com': {
        const flags = r.byte('sk flags');
        const counter = r.uint32('sk counter');
        r.end();
        if (alg !== k.type || (flags & SK_USER_PRESENT) === 0) return false;
        // What the authenticator signed: H(application) || flags || counter || H(data).
        const signed = new WireWriter()
          .raw(createHash('sha256').update(k.application).digest())
          .byte(flags)
          .uint32(counter)
          .raw(createHash('sha256').update(data).digest())
          .toBuffer();
        if (k.type === 'sk-ssh-ed25519@openssh.com') return sig.length === 64 && cryptoVerify(null, signed, key, sig);
        return verifyEcdsa(k.curve, signed, key, sig);
      }
      default:
        r.end();
        return alg === k.type && verifyEcdsa(k.curve, data, key, sig);
    }
  } catch (e) {
    if (e instanceof JitError) return false;
    throw e;
  }
}

/** SSH's (mpint r, mpint s) → P1363 r||s for node's verifier. */
function verifyEcdsa(curve: Curve, data: Buffer, key: KeyObject, sig: Buffer): boolean {
  const { size, hash } = CURVES[curve];
  const r = new WireReader(sig, SIGNATURE);
  const parts = [r.string('ecdsa r'), r.string('ecdsa s')];
  r.end();
  const p1363 = Buffer.alloc(2 * size);
  for (const [i, m] of parts.entries()) {
    if (m.length === 0 || m[0] & 0x80) return false;
    const mag = m[0] === 0 ? m.subarray(1) : m;
    if (mag.length > size) return false;
    mag.copy(p1363, i * size + size - mag.length);
  }
  return cryptoVerify(hash, data, { key, dsaEncoding: 'ieee-p1363' }, p1363);
}
