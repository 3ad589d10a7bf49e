/**
 * OpenSSH private key files ("openssh-key-v1"): OpenSSH 9.2 refuses node's PKCS#8 ed25519
 * PEM, so key files we hand to ssh/ssh-add are written in this format. Unencrypted files are
 * read and written here; encrypted ones (bcrypt-pbkdf + aes256-ctr) are decrypted by sshpk
 * and turned into KeyObjects through JWK (sshpk's ed25519 PKCS#8 is refused by OpenSSL 3).
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import type sshpk from 'sshpk';
import { JitError } from '../errors.js';
import { CURVES, type Curve } from './keys.js';
import { publicKeyBlobOf } from './signer.js';
import { WireReader, WireWriter, type WireFault } from './wire.js';

/** A key file that is short or too long is an invalid key. */
const KEY_FILE: WireFault = { code: 'invalid_key', what: 'OpenSSH private key' };

const MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');
const BEGIN = '-----BEGIN OPENSSH PRIVATE KEY-----';
const END = '-----END OPENSSH PRIVATE KEY-----';
/** Cipher "none" pads the private section to 8-byte blocks. */
const BLOCK = 8;

function bad(message: string, cause?: unknown): never {
  throw new JitError('invalid_key', message, cause === undefined ? {} : { cause });
}

/** The private fields of one key, as in the file's private section (after the type string). */
function writePrivateFields(w: WireWriter, key: KeyObject, publicBlob: Buffer): void {
  const jwk = key.export({ format: 'jwk' });
  const b = (s: string | undefined) => Buffer.from(s ?? '', 'base64url');
  const fields = new WireReader(publicBlob, KEY_FILE);
  fields.utf8();
  if (key.asymmetricKeyType === 'ed25519') {
    // OpenSSH keeps seed || public key as the 64-byte "private key".
    const pub = b(jwk.x);
    w.string(pub).string(Buffer.concat([b(jwk.d), pub]));
  } else if (key.asymmetricKeyType === 'ec') {
    // Curve name and point exactly as in the public blob, then the private scalar.
    w.raw(fields.rest()).mpint(b(jwk.d));
  } else if (key.asymmetricKeyType === 'rsa') {
    w.mpint(b(jwk.n)).mpint(b(jwk.e)).mpint(b(jwk.d)).mpint(b(jwk.qi)).mpint(b(jwk.p)).mpint(b(jwk.q));
  } else {
    bad(`cannot write ${key.asymmetricKeyType} keys in OpenSSH format`);
  }
}

/**
 * Writes an unencrypted OpenSSH private key file. checkInt is the random "check" word
 * OpenSSH uses to detect a wrong passphrase; the caller supplies it (ca/ has no randomness).
 */
export function encodeOpenSshPrivateKey(key: KeyObject, comment: string, checkInt: number): string {
  if (key.type !== 'private') bad('encodeOpenSshPrivateKey needs a private key');
  if (/[\r\n\0]/.test(comment)) bad('key comment must not contain newlines or NUL');
  const publicBlob = publicKeyBlobOf(key);
  const type = new WireReader(publicBlob, KEY_FILE).utf8();

  const priv = new WireWriter().uint32(checkInt).uint32(checkInt).string(type);
  writePrivateFields(priv, key, publicBlob);
  priv.string(comment);
  let section = priv.toBuffer();
  const padLen = (BLOCK - (section.length % BLOCK)) % BLOCK;
  const pad = Buffer.alloc(padLen);
  for (let i = 0; i < padLen; i++) pad[i] = i + 1;
  section = Buffer.concat([section, pad]);

  const file = new WireWriter()
    .raw(MAGIC)
    .string('none')
    .string('none')
    .string('')
    .uint32(1)
    .string(publicBlob)
    .string(section)
    .toBuffer();
  const b64 = file.toString('base64').match(/.{1,70}/g) ?? [];
  return `${BEGIN}\n${b64.join('\n')}\n${END}\n`;
}

interface PrivateParts {
  type: string;
  jwk: Record<string, string>;
}

function u(b: Buffer | bigint): string {
  if (typeof b === 'bigint') {
    let hex = b.toString(16);
    if (hex.length % 2) hex = '0' + hex;
    return Buffer.from(hex, 'hex').toString('base64url');
  }
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i).toString('base64url');
}

const big = (b: Buffer): bigint => (b.length === 0 ? 0n : BigInt('0x' + b.toString('hex')));

/** RSA as OpenSSH stores it (n, e, d, iqmp, p, q) → JWK, which also wants d mod (p-1), d mod (q-1). */
function rsaJwk(n: Buffer, e: Buffer, d: Buffer, iqmp: Buffer, p: Buffer, q: Buffer): Record<string, string> {
  const D = big(d);
  return {
    kty: 'RSA',
    n: u(n),
    e: u(e),
    d: u(d),
    p: u(p),
    q: u(q),
    dp: u(D % (big(p) - 1n)),
    dq: u(D % (big(q) - 1n)),
    qi: u(iqmp),
  };
}

function ecJwk(curve: Curve, point: Buffer, d: Buffer): Record<string, string> {
  const { size, jwk } = CURVES[curve];
  if (point.length !== 1 + 2 * size || point[0] !== 4) bad('ECDSA private key has a malformed public point');
  const dd = Buffer.alloc(size);
  const dm = d[0] === 0 ? d.subarray(1) : d;
  if (dm.length > size) bad('ECDSA private scalar is too long');
  dm.copy(dd, size - dm.length);
  return {
    kty: 'EC',
    crv: jwk,
    x: point.subarray(1, 1 + size).toString('base64url'),
    y: point.subarray(1 + size).toString('base64url'),
    d: dd.toString('base64url'),
  };
}

function readPrivateParts(r: WireReader): PrivateParts {
  const type = r.utf8('key type');
  switch (type) {
    case 'ssh-ed25519': {
      const pub = r.string('ed25519 public key');
      const sk = r.string('ed25519 private key');
      if (pub.length !== 32 || sk.length !== 64 || !sk.subarray(32).equals(pub)) bad('ed25519 private key is malformed');
      return { type, jwk: { kty: 'OKP', crv: 'Ed25519', x: pub.toString('base64url'), d: sk.subarray(0, 32).toString('base64url') } };
    }
    case 'ecdsa-sha2-nistp256':
    case 'ecdsa-sha2-nistp384':
    case 'ecdsa-sha2-nistp521': {
      const curve = r.utf8('curve') as Curve;
      if (`ecdsa-sha2-${curve}` !== type) bad('ECDSA curve name does not match the key type');
      return { type, jwk: ecJwk(curve, r.string('point'), r.string('private scalar')) };
    }
    case 'ssh-rsa': {
      const [n, e, d, iqmp, p, q] = ['n', 'e', 'd', 'iqmp', 'p', 'q'].map((w) => r.string(`RSA ${w}`));
      return { type, jwk: rsaJwk(n, e, d, iqmp, p, q) };
    }
    default:
      return bad(`unsupported private key type '${type.slice(0, 64)}'`);
  }
}

function toKeyObject(parts: PrivateParts): KeyObject {
  try {
    return createPrivateKey({ key: parts.jwk, format: 'jwk' });
  } catch (e) {
    return bad(`${parts.type} private key is not a valid key`, e);
  }
}

/**
 * sshpk costs ~50 ms to load and only encrypted files need it: `jit-ssh login` writes a key
 * file on every run and must start fast, so it is loaded on first use.
 */
function loadSshpk(): typeof sshpk {
  return createRequire(import.meta.url)('sshpk') as typeof sshpk;
}

/** sshpk's decrypted key → JWK. sshpk's ed25519 'k' may carry the public half too. */
function fromSshpk(key: sshpk.PrivateKey): KeyObject {
  const part = (name: string): Buffer => {
    const p = (key.part as unknown as Record<string, { data: Buffer } | undefined>)[name];
    if (!p) bad(`decrypted key lacks its ${name} field`);
    return p.data;
  };
  switch (key.type) {
    case 'ed25519': {
      const A = part('A');
      return toKeyObject({
        type: 'ssh-ed25519',
        jwk: { kty: 'OKP', crv: 'Ed25519', x: A.toString('base64url'), d: part('k').subarray(0, 32).toString('base64url') },
      });
    }
    case 'ecdsa': {
      const curve = part('curve').toString('latin1') as Curve;
      if (!(curve in CURVES)) bad('decrypted ECDSA key has an unsupported curve');
      return toKeyObject({ type: `ecdsa-sha2-${curve}`, jwk: ecJwk(curve, part('Q'), part('d')) });
    }
    case 'rsa':
      return toKeyObject({
        type: 'ssh-rsa',
        jwk: rsaJwk(part('n'), part('e'), part('d'), part('iqmp'), part('p'), part('q')),
      });
    default:
      return bad(`unsupported private key type ${key.type}`);
  }
}

/** Reads an OpenSSH private key file (ed25519, ECDSA, RSA; encrypted ones need the passphrase). */
export function decodeOpenSshPrivateKey(text: string, passphrase?: string): KeyObject {
  if (typeof text !== 'string' || text.length > 64 * 1024) bad('private key file is not text or is too large');
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (start < 0 || end < start) bad('not an OpenSSH private key (missing BEGIN/END OPENSSH PRIVATE KEY)');
  const b64 = text.slice(start + BEGIN.length, end).replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) bad('OpenSSH private key base64 is malformed');
  const file = Buffer.from(b64, 'base64');

  if (!file.subarray(0, MAGIC.length).equals(MAGIC)) bad('OpenSSH private key lacks the openssh-key-v1 magic');
  const r = new WireReader(file.subarray(MAGIC.length), KEY_FILE);
  const cipher = r.utf8('cipher name');
  const kdf = r.utf8('kdf name');
  r.string('kdf options');
  if (r.uint32('key count') !== 1) bad('OpenSSH private key files with more than one key are not supported');
  const publicBlob = r.string('public key');
  const section = r.string('private section');
  r.end('private key file');

  if (cipher !== 'none' || kdf !== 'none') {
    if (passphrase === undefined || passphrase === '') bad('this private key is encrypted and needs a passphrase');
    let decrypted: sshpk.PrivateKey;
    try {
      decrypted = loadSshpk().parsePrivateKey(text, 'openssh', { passphrase });
    } catch (e) {
      // sshpk's message says "Incorrect passphrase" or names the unsupported cipher; no secrets in it.
      return bad(`cannot decrypt private key: ${(e as Error).message}`);
    }
    const key = fromSshpk(decrypted);
    if (!publicKeyBlobOf(key).equals(publicBlob)) bad('decrypted private key does not match its public key');
    return key;
  }

  const pr = new WireReader(section, KEY_FILE);
  if (pr.uint32('check word') !== pr.uint32('check word')) bad('private key check words differ (corrupt file)');
  const key = toKeyObject(readPrivateParts(pr));
  pr.utf8('comment');
  const pad = pr.rest();
  if (pad.length >= BLOCK || pad.some((v, i) => v !== i + 1) || section.length % BLOCK !== 0) bad('private key padding is malformed');
  // A file whose public and private halves disagree would sign with a key nobody trusts.
  if (!publicKeyBlobOf(key).equals(publicBlob)) bad('private key does not match its public key');
  return key;
}
