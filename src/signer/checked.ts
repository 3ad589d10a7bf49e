/**
 * Signatures that come from outside this process (a token, an agent) are checked before a
 * certificate carries them: a wrong algorithm (an agent that ignored the rsa-sha2-512 flag and
 * signed with SHA-1) or a signature by another key must never reach a host. Costs one verify.
 */
import { JitError } from '../errors.js';
import { verifySshSignature } from '../ca/signer.js';
import { CA_SSH_KEY_TYPE, decodeKeyBlob, fingerprintOf, publicKeyLine as lineOf } from '../ca/keys.js';
import { WireReader, type WireFault } from '../ca/wire.js';
import type { CaSigner } from './types.js';

/** A custody backend's signature that is short or too long is an invalid signature. */
const SIGNATURE: WireFault = { code: 'invalid_signature', what: 'signature from the CA key custody' };

/**
 * ca_unavailable for the requester (a fixed message: no socket paths or token names leave the
 * CA), with the specific reason as the cause, which the server logs for whoever is on call.
 */
export function caUnavailable(fingerprint: string, reason: string): JitError {
  return new JitError('ca_unavailable', `CA key ${fingerprint} cannot sign right now; try again shortly`, { cause: new Error(reason) });
}

/** The signature algorithm a CA key must sign certificates with (RSA: SHA-512 only). */
export function certSignatureAlgorithm(keyType: string): string {
  return keyType === 'ssh-rsa' ? 'rsa-sha2-512' : keyType;
}

/** Key types a CA may hold (ca/keys.ts CA_SSH_KEY_TYPE). */
const CA_KEY_TYPES: ReadonlySet<string> = new Set(Object.values(CA_SSH_KEY_TYPE));

/**
 * A CaSigner around signRaw (which returns an SSH signature blob), refusing any signature that
 * does not verify under publicKeyBlob with the expected algorithm. `where` names the holder
 * ("token jit-ca", "ssh-agent at /run/agent.sock") in errors.
 */
export function checkedSigner(publicKeyBlob: Buffer, comment: string, where: string, signRaw: (data: Buffer) => Promise<Buffer>): CaSigner {
  const keyType = decodeKeyBlob(publicKeyBlob).type;
  if (!CA_KEY_TYPES.has(keyType)) throw new JitError('invalid_config', `${where}: ${keyType} keys cannot be CA keys`);
  const fingerprint = fingerprintOf(publicKeyBlob);
  const want = certSignatureAlgorithm(keyType);
  return {
    publicKeyBlob,
    keyType,
    publicKeyLine: lineOf(publicKeyBlob, comment),
    fingerprint,
    async sign(data) {
      const sig = await signRaw(data);
      let alg = '';
      try {
        alg = new WireReader(sig, SIGNATURE).utf8('signature algorithm');
      } catch {
        // reported below as a signature that does not verify
      }
      if (alg !== want || !verifySshSignature(publicKeyBlob, data, sig)) {
        throw caUnavailable(fingerprint, `${where} returned a bad signature (algorithm '${alg.slice(0, 40)}', want '${want}')`);
      }
      return sig;
    },
  };
}

/**
 * A key hosts still trust but that no longer signs (rotated out): only its public half is
 * needed, so its private key is never loaded — and a keyring may hold keys of a previous
 * backend while migrating (file → token).
 */
export function publicOnlySigner(publicKeyLine: string): CaSigner {
  const publicKeyBlob = Buffer.from(publicKeyLine.split(' ')[1] ?? '', 'base64');
  const fingerprint = fingerprintOf(publicKeyBlob);
  return {
    publicKeyBlob,
    keyType: decodeKeyBlob(publicKeyBlob).type,
    publicKeyLine,
    fingerprint,
    sign: () => Promise.reject(new JitError('internal', `CA key ${fingerprint} is no longer the signing key`)),
  };
}
