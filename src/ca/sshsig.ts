/**
 * SSHSIG (OpenSSH PROTOCOL.sshsig): the `ssh-keygen -Y sign` format. Used to authenticate a
 * user by a signature over a server challenge, so parsing is strict and every refusal is
 * JitError('invalid_signature'); messages say what is wrong with the signature, never which
 * allowed key came close. Without allowedKeys any well-signed key passes: the caller must then
 * decide whether the returned key is acceptable.
 */
import { createHash } from 'node:crypto';
import { JitError } from '../errors.js';
import { decodeKeyBlob } from './keys.js';
import { verifySshSignature } from './signer.js';
import type { Signer } from './types.js';
import { WireReader, WireWriter, type WireFault } from './wire.js';

/** An SSHSIG blob that is short or too long is an invalid signature. */
const SSHSIG_DATA: WireFault = { code: 'invalid_signature', what: 'SSHSIG' };

export type SshSigHash = 'sha256' | 'sha512';

export interface VerifySshSigOptions {
  /** Must equal the signature's namespace exactly (e.g. 'jit-ssh'). */
  namespace: string;
  /** When given, the embedded public key blob must equal one of these byte for byte. */
  allowedKeys?: readonly Buffer[];
}

export interface VerifiedSshSig {
  publicKey: Buffer;
  hashAlg: SshSigHash;
}

/** Anything that can produce an SSH signature blob for a key: a CA Signer, a key file, ssh-agent. */
export type SshSigSigner =
  | Signer
  | { readonly publicKeyBlob: Buffer; sign(data: Buffer): Buffer | Promise<Buffer> };

const MAGIC = Buffer.from('SSHSIG');
const VERSION = 1;
const BEGIN = '-----BEGIN SSH SIGNATURE-----';
const END = '-----END SSH SIGNATURE-----';
/** Real signatures are < 2 KiB even for RSA-16384; anything much larger is not one of ours. */
const MAX_ARMOR = 8 * 1024;
/** ssh-keygen wraps at 70; other tools use 64 or 76. Longer lines mean it is not armor. */
const MAX_LINE = 76;
const WRAP = 70;
/** FIDO "user present" flag: without it the security key was not touched. */
const SK_USER_PRESENT = 0x01;

function fail(message: string): never {
  throw new JitError('invalid_signature', message);
}

/** Runs fn, turning a key-format error (invalid_key) into invalid_signature: a bad key inside a signature makes the signature invalid. */
function asSigError<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof JitError && e.code !== 'invalid_signature') {
      throw new JitError('invalid_signature', `${what}: ${e.message}`, { cause: e });
    }
    throw e;
  }
}

function checkNamespace(ns: string): void {
  // OpenSSH refuses an empty namespace: it would let a signature made for one purpose serve another.
  if (typeof ns !== 'string' || ns.length === 0) throw new JitError('bad_request', 'SSHSIG namespace must not be empty');
}

function checkHashAlg(h: string): asserts h is SshSigHash {
  if (h !== 'sha256' && h !== 'sha512') fail(`SSHSIG hash algorithm must be sha256 or sha512, got '${h.slice(0, 32)}'`);
}

/** What the key actually signs: MAGIC + namespace + reserved + hash_alg + H(message). */
function signedData(namespace: string, reserved: Buffer, hashAlg: SshSigHash, message: Buffer): Buffer {
  const digest = createHash(hashAlg).update(message).digest();
  return new WireWriter().raw(MAGIC).string(namespace).string(reserved).string(hashAlg).string(digest).toBuffer();
}

/**
 * Checks an SSH signature blob by keyBlob over data. signer.ts does the cryptography; the
 * common refusals are named here first, because a bare "does not verify" would leave a user
 * with an old agent (SHA-1 RSA) or an untouched security key guessing.
 */
function checkSignature(keyBlob: Buffer, sigBlob: Buffer, data: Buffer): void {
  const k = asSigError('SSHSIG public key', () => decodeKeyBlob(keyBlob));
  const alg = new WireReader(sigBlob, SSHSIG_DATA).utf8('signature algorithm');
  if (k.type === 'ssh-rsa') {
    // SHA-1 RSA signatures are forgeable in principle; OpenSSH refuses them in SSHSIG too.
    if (alg === 'ssh-rsa') fail('RSA signatures with SHA-1 (ssh-rsa) are refused; use rsa-sha2-256 or rsa-sha2-512');
    if (alg !== 'rsa-sha2-256' && alg !== 'rsa-sha2-512') fail(`unsupported RSA signature algorithm '${alg.slice(0, 64)}'`);
  } else if (alg !== k.type) {
    fail(`signature algorithm '${alg.slice(0, 64)}' does not match key type ${k.type}`);
  }
  // Security keys: the blob ends in byte flags + uint32 counter. Without user presence the
  // signature could come from malware while the key is plugged in.
  if (k.type.startsWith('sk-') && sigBlob.length >= 5 && (sigBlob[sigBlob.length - 5] & SK_USER_PRESENT) === 0) {
    fail('security key signature lacks the user-presence flag');
  }
  let ok: boolean;
  try {
    ok = verifySshSignature(keyBlob, data, sigBlob);
  } catch (e) {
    // Whatever OpenSSL objects to in attacker-chosen input is a refusal, not an internal error.
    throw new JitError('invalid_signature', 'SSHSIG signature could not be checked', { cause: e });
  }
  if (!ok) fail('SSHSIG signature does not verify');
}

/** Strict armor: BEGIN line, base64 lines, END line; surrounding whitespace only. */
function dearmor(armored: string): Buffer {
  if (typeof armored !== 'string') fail('SSHSIG must be a string');
  if (armored.length > MAX_ARMOR) fail(`SSHSIG armor is longer than ${MAX_ARMOR} characters`);
  const lines = armored.trim().split(/\r?\n/);
  if (lines[0] !== BEGIN) fail(`SSHSIG armor must start with '${BEGIN}'`);
  if (lines.length < 3 || lines[lines.length - 1] !== END) fail(`SSHSIG armor must end with '${END}'`);
  const body = lines.slice(1, -1);
  for (const l of body) {
    if (l.length === 0 || l.length > MAX_LINE || !/^[A-Za-z0-9+/=]+$/.test(l)) fail('SSHSIG armor has a malformed base64 line');
  }
  const b64 = body.join('');
  if (b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) fail('SSHSIG armor base64 is malformed');
  const blob = Buffer.from(b64, 'base64');
  // Non-zero padding bits decode "fine"; a second spelling of the same blob is refused.
  if (blob.toString('base64') !== b64) fail('SSHSIG armor base64 is not canonical');
  return blob;
}

function armor(blob: Buffer): string {
  const b64 = blob.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += WRAP) lines.push(b64.slice(i, i + WRAP));
  return `${BEGIN}\n${lines.join('\n')}\n${END}\n`;
}

/**
 * Verifies an armored SSHSIG over message. Returns the signing key blob and hash algorithm;
 * throws JitError('invalid_signature') on any problem.
 */
export function verifySshSig(armored: string, message: Buffer, opts: VerifySshSigOptions): VerifiedSshSig {
  checkNamespace(opts.namespace);
  const blob = dearmor(armored);
  const r = new WireReader(blob, SSHSIG_DATA);
  if (!r.bytes(MAGIC.length, 'SSHSIG magic').equals(MAGIC)) fail('not an SSHSIG blob (bad magic)');
  const version = r.uint32('SSHSIG version');
  if (version !== VERSION) fail(`unsupported SSHSIG version ${version}`);
  const publicKey = Buffer.from(r.string('public key'));
  const namespace = r.string('namespace');
  const reserved = r.string('reserved');
  const hashAlg = r.utf8('hash algorithm');
  const signature = r.string('signature');
  r.end('SSHSIG');
  // Compare bytes, not decoded text: invalid UTF-8 must not collapse onto the expected name.
  if (!namespace.equals(Buffer.from(opts.namespace, 'utf8'))) fail('SSHSIG namespace does not match');
  checkHashAlg(hashAlg);
  // Checked before the (possibly expensive) verification, and without saying which key came close.
  if (opts.allowedKeys && !opts.allowedKeys.some((k) => k.equals(publicKey))) fail('SSHSIG signing key is not allowed');
  checkSignature(publicKey, signature, signedData(opts.namespace, reserved, hashAlg, message));
  return { publicKey, hashAlg };
}

/**
 * Signs message as `ssh-keygen -Y sign -n namespace` would and returns the armored signature.
 * The signer's output is verified before it is returned, so a signer that falls back to SHA-1
 * RSA (an old agent) or signs with another key is caught here, not by the server.
 */
export async function signSshSig(
  message: Buffer,
  signer: SshSigSigner,
  namespace: string,
  hashAlg: SshSigHash = 'sha512',
): Promise<string> {
  checkNamespace(namespace);
  if (hashAlg !== 'sha256' && hashAlg !== 'sha512') throw new JitError('bad_request', 'SSHSIG hash algorithm must be sha256 or sha512');
  const data = signedData(namespace, Buffer.alloc(0), hashAlg, message);
  const sig = await signer.sign(data);
  checkSignature(signer.publicKeyBlob, sig, data);
  const blob = new WireWriter()
    .raw(MAGIC)
    .uint32(VERSION)
    .string(signer.publicKeyBlob)
    .string(namespace)
    .string('')
    .string(hashAlg)
    .string(sig)
    .toBuffer();
  return armor(blob);
}
