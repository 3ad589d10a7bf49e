/** Plain data shared by the pure certificate core. No behaviour here. */

export type CertType = 'user' | 'host';

/** Everything that goes into one OpenSSH certificate; checked once by checkCertParams. */
export interface CertParams {
  type: CertType;
  /** Subject public key as an SSH wire blob (string type + key fields), e.g. from parsePublicKey(). */
  publicKey: Buffer;
  /** Unique, never reused, never 0. */
  serial: bigint;
  keyId: string;
  /** Never empty: OpenSSH treats an empty list as "any principal". */
  principals: readonly string[];
  /** Seconds since the epoch. */
  validAfter: bigint;
  validBefore: bigint;
  /** Name → value ('' for flag options). Written sorted by name. */
  criticalOptions: Readonly<Record<string, string>>;
  extensions: Readonly<Record<string, string>>;
  /** 32 random bytes supplied by the caller (the core has no randomness of its own). */
  nonce: Buffer;
}

/** A CA key that can sign. The private key never leaves the implementation. */
export interface Signer {
  /** SSH wire blob of the CA public key. */
  readonly publicKeyBlob: Buffer;
  /** e.g. 'ssh-ed25519', 'ecdsa-sha2-nistp256', 'ssh-rsa'. */
  readonly keyType: string;
  /** authorized_keys-style line, e.g. 'ssh-ed25519 AAAA… jit-ssh-ca'. */
  readonly publicKeyLine: string;
  /** 'SHA256:…' as ssh-keygen prints it. */
  readonly fingerprint: string;
  /**
   * Signs data and returns the SSH signature blob: string(sig algorithm) + string(sig bytes)
   * (ed25519 → 'ssh-ed25519'; ECDSA → 'ecdsa-sha2-nistpN' with (r,s) mpints; RSA → 'rsa-sha2-512').
   */
  sign(data: Buffer): Buffer;
  /** The same signature computed on libuv's thread pool: the event loop's core stays free for requests. */
  signInPool(data: Buffer): Promise<Buffer>;
}
