/**
 * CA key custody behind one interface. A KeyCustody creates and opens CA keys where they live
 * (a file, a PKCS#11 token, an ssh-agent); a CaSigner signs with one of them. For the token and
 * the agent no private key material ever enters this process: only public keys and handles.
 */
import type { CaKeyType } from '../policy/config-schema.js';

/** Where one CA key lives; stored in the keyring manifest next to its fingerprint. */
export type KeyLocation =
  | { file: string }
  /** A key pair in the token: both objects carry this label and CKA_ID (hex). */
  | { pkcs11: { label: string; id: string } }
  /** A key held by the configured ssh-agent, named by its public key. */
  | { agent: true };

export type CustodyBackend = 'file' | 'pkcs11' | 'agent';

/** A CA key that can sign; signing may be I/O (token, agent), hence async. */
export interface CaSigner {
  /** SSH wire blob of the CA public key. */
  readonly publicKeyBlob: Buffer;
  /** e.g. 'ssh-ed25519', 'ecdsa-sha2-nistp256', 'ssh-rsa'. */
  readonly keyType: string;
  /** authorized_keys-style line. */
  readonly publicKeyLine: string;
  /** 'SHA256:…' as ssh-keygen prints it. */
  readonly fingerprint: string;
  /** The SSH signature blob over data; JitError('ca_unavailable') when the token/agent cannot sign. */
  sign(data: Buffer): Promise<Buffer>;
}

/** A key the backend made or found: where it lives and its public half. */
export interface HeldKey {
  location: KeyLocation;
  publicKeyLine: string;
  fingerprint: string;
}

/** One key object the backend holds, for `ca show`. */
export interface ListedKey extends HeldKey {
  /** Backend-specific facts worth showing (token label and id, extractable flags). */
  note: string;
}

export interface KeyCustody {
  readonly backend: CustodyBackend;
  /** Makes a new CA key where this backend keeps keys (the agent cannot: it refuses). */
  create(type: CaKeyType, now: Date): HeldKey;
  /** The key the config itself names (agent: ca.agent.key); it is the active key. */
  configured(): HeldKey | undefined;
  /** Keys this backend holds that a fresh keyring may adopt (a token's keys under keyLabel). */
  adoptable(): HeldKey[];
  /** A signer for a stored key; JitError('invalid_config') when the key is not where it should be. */
  open(location: KeyLocation, fingerprint: string, publicKeyLine: string): CaSigner;
  /** Every key object the backend can see, for `ca show`. */
  list(): ListedKey[];
  /** Deletes a key object for good (`ca retire --destroy`). */
  destroy(location: KeyLocation): void;
  close(): Promise<void>;
}
