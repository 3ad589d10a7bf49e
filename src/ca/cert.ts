/**
 * OpenSSH certificates (PROTOCOL.certkeys): check the parameters once, then write the fields
 * in wire order. The subject key's fields are copied from its blob after the type string, so
 * the encoder never needs to understand the key algorithm; the blob was checked before.
 */
import { JitError } from '../errors.js';
import { decodeKeyBlob, readKeyFields } from './keys.js';
import { verifySshSignature } from './signer.js';
import type { CertParams, CertType, Signer } from './types.js';
import { WireReader, WireWriter, type WireFault } from './wire.js';

/** Certificate bytes that are short or too long are an invalid certificate. */
const CERT_DATA: WireFault = { code: 'invalid_certificate', what: 'certificate' };

export const KNOWN_CRITICAL_OPTIONS = ['force-command', 'source-address', 'verify-required'] as const;
export const KNOWN_EXTENSIONS = [
  'no-touch-required',
  'permit-X11-forwarding',
  'permit-agent-forwarding',
  'permit-port-forwarding',
  'permit-pty',
  'permit-user-rc',
] as const;

const CERT_TYPE_CODE: Record<CertType, number> = { user: 1, host: 2 };
const MAX_U64 = (1n << 64n) - 1n;
const MAX_PRINCIPALS = 256;
const MAX_FIELD = 1024;

export interface ParsedCert {
  /** e.g. 'ssh-ed25519-cert-v01@openssh.com' */
  type: string;
  nonce: Buffer;
  /** The subject key as a plain public-key blob ('ssh-ed25519' + fields). */
  publicKey: Buffer;
  serial: bigint;
  certType: CertType;
  keyId: string;
  principals: string[];
  validAfter: bigint;
  validBefore: bigint;
  criticalOptions: Record<string, string>;
  extensions: Record<string, string>;
  /** The CA public-key blob. */
  signatureKey: Buffer;
  /** The signature blob: string(alg) + string(sig). */
  signature: Buffer;
  /** Everything the signature covers. */
  signedBytes: Buffer;
}

function bad(message: string): never {
  throw new JitError('invalid_certificate', message);
}

/** Subject key type → certificate type. */
export function certTypeName(keyType: string): string {
  if (keyType === 'sk-ssh-ed25519@openssh.com') return 'sk-ssh-ed25519-cert-v01@openssh.com';
  if (keyType === 'sk-ecdsa-sha2-nistp256@openssh.com') return 'sk-ecdsa-sha2-nistp256-cert-v01@openssh.com';
  return `${keyType}-cert-v01@openssh.com`;
}

/** Certificate type → subject key type (undefined when it is not a certificate type). */
function keyTypeOfCert(certType: string): string | undefined {
  const m = /^(.*)-cert-v01@openssh\.com$/.exec(certType);
  if (!m) return undefined;
  return m[1].startsWith('sk-') ? `${m[1]}@openssh.com` : m[1];
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

const IPV4_CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/;
const IPV6_CIDR = /^([0-9a-fA-F:.]+)(?:\/(\d{1,3}))?$/;

/** Values already found valid: the same few source addresses recur on every issuance. */
const validSourceAddresses = new Set<string>();

/** source-address is a comma list of addresses/CIDRs (sshd's addr_match_cidr_list); no names. */
function checkSourceAddress(value: string): void {
  if (validSourceAddresses.has(value)) return;
  for (const entry of value.split(',')) {
    const v4 = IPV4_CIDR.exec(entry);
    if (v4) {
      if (v4.slice(1, 5).some((o) => Number(o) > 255) || (v4[5] !== undefined && Number(v4[5]) > 32)) {
        bad(`critical option source-address: '${entry}' is not a valid IPv4 address/CIDR`);
      }
      continue;
    }
    const v6 = IPV6_CIDR.exec(entry);
    if (v6 && v6[1].includes(':') && (v6[2] === undefined || Number(v6[2]) <= 128)) continue;
    bad(`critical option source-address: '${entry.slice(0, 64)}' is not an address or CIDR`);
  }
  if (validSourceAddresses.size >= 4096) validSourceAddresses.clear();
  validSourceAddresses.add(value);
}

function checkOptionMap(
  kind: 'critical option' | 'extension',
  map: Readonly<Record<string, string>>,
  known: readonly string[],
): void {
  if (map === null || typeof map !== 'object') bad(`${kind}s must be an object`);
  for (const [name, value] of Object.entries(map)) {
    if (!known.includes(name)) bad(`unknown ${kind} '${name.slice(0, 64)}' (known: ${known.join(', ')})`);
    if (typeof value !== 'string') bad(`${kind} ${name}: value must be a string`);
    if (value.includes('\0') || value.includes('\n') || value.includes('\r')) bad(`${kind} ${name}: value contains NUL or newline`);
    if (value.length > 4096) bad(`${kind} ${name}: value is too long`);
  }
}

/** Refuses impossible or dangerous certificates; the message names the field. */
export function checkCertParams(p: CertParams): void {
  if (p.type !== 'user' && p.type !== 'host') bad(`type must be 'user' or 'host'`);
  if (!Buffer.isBuffer(p.publicKey)) bad('publicKey must be a key blob');
  try {
    decodeKeyBlob(p.publicKey);
  } catch (e) {
    bad(`publicKey: ${(e as Error).message}`);
  }
  if (typeof p.serial !== 'bigint' || p.serial <= 0n || p.serial > MAX_U64) bad('serial must be between 1 and 2^64-1');
  if (typeof p.keyId !== 'string' || CONTROL.test(p.keyId)) bad('keyId must be a string without control characters');
  if (Buffer.byteLength(p.keyId) > MAX_FIELD) bad(`keyId is longer than ${MAX_FIELD} bytes`);

  if (!Array.isArray(p.principals) || p.principals.length === 0) {
    bad('principals must not be empty (OpenSSH treats an empty list as any principal)');
  }
  if (p.principals.length > MAX_PRINCIPALS) bad(`more than ${MAX_PRINCIPALS} principals`);
  const seen = new Set<string>();
  p.principals.forEach((pr, i) => {
    if (typeof pr !== 'string' || pr === '') bad(`principals[${i}] is empty`);
    // ',' would split into two principals in sshd's lists; whitespace splits principals files.
    if (/[,\s]/.test(pr) || CONTROL.test(pr)) bad(`principals[${i}] '${pr.slice(0, 64)}' contains a comma, whitespace or control character`);
    if (Buffer.byteLength(pr) > MAX_FIELD) bad(`principals[${i}] is longer than ${MAX_FIELD} bytes`);
    if (seen.has(pr)) bad(`principals[${i}] '${pr}' is a duplicate`);
    seen.add(pr);
  });

  if (typeof p.validAfter !== 'bigint' || typeof p.validBefore !== 'bigint') bad('validAfter/validBefore must be bigint seconds');
  if (p.validAfter < 0n || p.validAfter > MAX_U64) bad('validAfter is out of range');
  if (p.validBefore < 0n || p.validBefore > MAX_U64) bad('validBefore is out of range');
  if (p.validAfter >= p.validBefore) bad('validAfter must be before validBefore');

  checkOptionMap('critical option', p.criticalOptions, KNOWN_CRITICAL_OPTIONS);
  checkOptionMap('extension', p.extensions, KNOWN_EXTENSIONS);
  const co = p.criticalOptions;
  if ('force-command' in co && co['force-command'] === '') bad('critical option force-command needs a command');
  if ('source-address' in co) {
    if (co['source-address'] === '') bad('critical option source-address needs an address list');
    checkSourceAddress(co['source-address']);
  }
  if ('verify-required' in co && co['verify-required'] !== '') bad('critical option verify-required takes no value');
  for (const [name, value] of Object.entries(p.extensions)) {
    if (value !== '') bad(`extension ${name} takes no value`);
  }

  if (!Buffer.isBuffer(p.nonce) || p.nonce.length < 16 || p.nonce.length > 64) bad('nonce must be 16..64 bytes (OpenSSH uses 32)');
}

/** Options/extensions: sorted by name; a non-empty value is a string inside the data string. */
function writeOptions(w: WireWriter, map: Readonly<Record<string, string>>): void {
  // Names are known ASCII names (checked), so UTF-16 order is OpenSSH's byte order.
  const names = Object.keys(map).sort();
  const outer = w.beginString();
  for (const name of names) {
    const value = map[name];
    w.string(name);
    if (value === '') w.uint32(0);
    else {
      const inner = w.beginString();
      w.string(value).endString(inner);
    }
  }
  w.endString(outer);
}

/** The CA key as a wire string, encoded once per CA key blob (hot path). */
const caKeyField = new WeakMap<Buffer, Buffer>();

/** A certificate up to (and including) its signature key: what the CA signs. */
export interface UnsignedCertificate {
  /** Everything the signature covers. */
  readonly body: Buffer;
  readonly certType: string;
  readonly keyId: string;
}

/**
 * Checks the params and encodes the part of the certificate the CA signs. Split from the
 * signature so a CA key held elsewhere (a token, an ssh-agent) can sign it asynchronously.
 */
export function certificateBody(p: CertParams, caPublicKeyBlob: Buffer): UnsignedCertificate {
  checkCertParams(p);
  if (p.publicKey.equals(caPublicKeyBlob)) bad('publicKey is the CA key itself');

  const keyReader = new WireReader(p.publicKey, CERT_DATA);
  const certType = certTypeName(keyReader.utf8('key type'));
  let caKey = caKeyField.get(caPublicKeyBlob);
  if (!caKey) caKeyField.set(caPublicKeyBlob, (caKey = new WireWriter().string(caPublicKeyBlob).toBuffer()));

  const w = new WireWriter(1024)
    .string(certType)
    .string(p.nonce)
    .raw(keyReader.rest())
    .uint64(p.serial)
    .uint32(CERT_TYPE_CODE[p.type])
    .string(p.keyId);
  const principals = w.beginString();
  for (const pr of p.principals) w.string(pr);
  w.endString(principals).uint64(p.validAfter).uint64(p.validBefore);
  writeOptions(w, p.criticalOptions);
  writeOptions(w, p.extensions);
  w.string('') // reserved
    .raw(caKey);
  return { body: w.toBuffer(), certType, keyId: p.keyId };
}

/** The signed certificate: body + string(signature blob), as a blob and an authorized_keys-style line. */
export function attachSignature(u: UnsignedCertificate, signature: Buffer): { blob: Buffer; line: string } {
  const sig = new WireWriter(signature.length + 4).string(signature).toBuffer();
  const blob = Buffer.concat([u.body, sig]);
  const line = `${u.certType} ${blob.toString('base64')}${u.keyId ? ` ${u.keyId}` : ''}`;
  return { blob, line };
}

/** Encodes and signs in one step with a CA key held in this process. */
export function encodeCertificate(p: CertParams, ca: Signer): { blob: Buffer; line: string } {
  const u = certificateBody(p, ca.publicKeyBlob);
  return attachSignature(u, ca.sign(u.body));
}

function readOptions(data: Buffer, kind: string): Record<string, string> {
  const r = new WireReader(data, CERT_DATA);
  const out: Record<string, string> = Object.create(null);
  while (r.remaining > 0) {
    const name = r.utf8(`${kind} name`);
    const raw = r.string(`${kind} ${name} value`);
    if (Object.prototype.hasOwnProperty.call(out, name)) bad(`duplicate ${kind} '${name.slice(0, 64)}'`);
    let value = '';
    if (raw.length > 0) {
      const vr = new WireReader(raw, CERT_DATA);
      value = vr.utf8(`${kind} ${name} value`);
      vr.end(`${kind} ${name} value`);
    }
    out[name] = value;
  }
  return { ...out };
}

/** Parses a certificate blob or a `<type> <base64> [comment]` line strictly. */
export function parseCertificate(blobOrLine: Buffer | string): ParsedCert {
  let blob: Buffer;
  if (typeof blobOrLine === 'string') {
    if (blobOrLine.length > 64 * 1024) bad('certificate line is too long');
    const [lineType, b64] = blobOrLine.trim().split(/[ \t]+/);
    if (!b64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) bad('certificate base64 is malformed');
    blob = Buffer.from(b64, 'base64');
    const r = new WireReader(blob, CERT_DATA);
    let blobType: string;
    try {
      blobType = r.utf8('certificate type');
    } catch {
      bad('certificate blob is truncated');
    }
    if (blobType !== lineType) bad(`certificate line says '${lineType.slice(0, 64)}' but the blob is '${blobType.slice(0, 64)}'`);
  } else {
    blob = blobOrLine;
  }

  try {
    const r = new WireReader(blob, CERT_DATA);
    const type = r.utf8('certificate type');
    const keyType = keyTypeOfCert(type);
    if (!keyType) bad(`'${type.slice(0, 64)}' is not a certificate type`);
    const nonce = r.string('nonce');
    const keyStart = r.offset;
    readKeyFields(r, keyType);
    const keyFields = blob.subarray(keyStart, r.offset);
    const publicKey = new WireWriter().string(keyType).raw(keyFields).toBuffer();
    const serial = r.uint64('serial');
    const typeCode = r.uint32('certificate kind');
    const certType: CertType | undefined = typeCode === 1 ? 'user' : typeCode === 2 ? 'host' : undefined;
    if (!certType) bad(`certificate kind ${typeCode} is neither user (1) nor host (2)`);
    const keyId = r.utf8('key id');
    const pr = new WireReader(r.string('principals'), CERT_DATA);
    const principals: string[] = [];
    while (pr.remaining > 0) principals.push(pr.utf8('principal'));
    const validAfter = r.uint64('valid after');
    const validBefore = r.uint64('valid before');
    const criticalOptions = readOptions(r.string('critical options'), 'critical option');
    const extensions = readOptions(r.string('extensions'), 'extension');
    r.string('reserved');
    const signatureKey = r.string('signature key');
    const signedBytes = blob.subarray(0, r.offset);
    const signature = r.string('signature');
    r.end('certificate');
    return {
      type,
      nonce,
      publicKey,
      serial,
      certType,
      keyId,
      principals,
      validAfter,
      validBefore,
      criticalOptions,
      extensions,
      signatureKey,
      signature,
      signedBytes,
    };
  } catch (e) {
    if (e instanceof JitError && e.code !== 'invalid_certificate') bad(`malformed certificate: ${e.message}`);
    throw e;
  }
}

/** True when the signature is valid for signedBytes under signatureKey (no time or principal checks). */
export function verifyCertificateSignature(parsed: ParsedCert): boolean {
  try {
    return verifySshSignature(parsed.signatureKey, parsed.signedBytes, parsed.signature);
  } catch {
    // An unusable CA key (unknown type, a certificate as CA) cannot have made a valid signature.
    return false;
  }
}
