/**
 * Bearer tokens. Session tokens are random 256-bit strings handed out after an SSH-key login;
 * only their SHA-256 is kept (in memory: they live minutes, and after a restart the CLI simply
 * signs a new challenge; with PostgreSQL they live in the database, so every replica knows them:
 * see SessionTokenStore). Static automation tokens are configured as SHA-256 hashes and
 * compared in constant time.
 */
import { hash as sha, timingSafeEqual } from 'node:crypto';

export const TOKEN_PREFIX = 'jit_';
const TOKEN_SHAPE = /^jit_[A-Za-z0-9_-]{43}$/;
const MAX_BEARER_LENGTH = 512;

export interface TokenRecord {
  user: string;
  expiresAt: number; // ms epoch
  /** Set for sessions opened with an OIDC ID token: the groups the IdP gave at login. */
  idpGroups?: string[];
}

export interface StaticToken {
  name: string;
  user: string;
  sha256: string; // hex
  expires?: number; // ms epoch
}

export function hashToken(token: string): Buffer {
  return sha('sha256', token, 'buffer');
}

/** Where session tokens are kept, by the hex SHA-256 of the token (never the token). */
export interface SessionTokenStore {
  put(hash: string, rec: TokenRecord): Promise<void>;
  /** undefined when unknown or expired at `now` (ms). */
  get(hash: string, now: number): Promise<TokenRecord | undefined>;
  delete(hash: string): Promise<void>;
  revokeUser(user: string): Promise<void>;
}

/** One daemon's tokens in memory (the embedded store). */
export class MemorySessionTokens implements SessionTokenStore {
  private readonly byHash = new Map<string, TokenRecord>();

  async put(hash: string, rec: TokenRecord): Promise<void> {
    const now = Date.now();
    for (const [h, r] of this.byHash) if (r.expiresAt <= now) this.byHash.delete(h);
    this.byHash.set(hash, rec);
  }

  async get(hash: string, now: number): Promise<TokenRecord | undefined> {
    const rec = this.byHash.get(hash);
    return rec && rec.expiresAt > now ? rec : undefined;
  }

  async delete(hash: string): Promise<void> {
    this.byHash.delete(hash);
  }

  async revokeUser(user: string): Promise<void> {
    for (const [h, r] of this.byHash) if (r.user === user) this.byHash.delete(h);
  }
}

export class SessionTokens {
  private readonly store: SessionTokenStore;

  constructor(private readonly deps: { now: () => number; random: (n: number) => Buffer; ttlMs: number; store?: SessionTokenStore }) {
    this.store = deps.store ?? new MemorySessionTokens();
  }

  async issue(user: string, extra: { idpGroups?: string[] } = {}): Promise<{ token: string; expiresAt: number }> {
    const token = TOKEN_PREFIX + this.deps.random(32).toString('base64url');
    const expiresAt = this.deps.now() + this.deps.ttlMs;
    await this.store.put(hashToken(token).toString('hex'), { user, expiresAt, ...(extra.idpGroups ? { idpGroups: [...extra.idpGroups] } : {}) });
    return { token, expiresAt };
  }

  /** The record for a live session token; a lookup by hash leaks nothing about the token. */
  async resolve(token: string): Promise<TokenRecord | undefined> {
    if (!TOKEN_SHAPE.test(token)) return undefined;
    return this.store.get(hashToken(token).toString('hex'), this.deps.now());
  }

  /** Ends one session (signing out of the web pages). */
  async revoke(token: string): Promise<void> {
    if (TOKEN_SHAPE.test(token)) await this.store.delete(hashToken(token).toString('hex'));
  }

  revokeUser(user: string): Promise<void> {
    return this.store.revokeUser(user);
  }
}

/** Configured hashes decoded once per policy (the list object changes only on reload). */
const decodedHashes = new WeakMap<readonly HashedToken[], Buffer[]>();

/** Anything configured as the SHA-256 of a secret: automation tokens, host tokens. */
export interface HashedToken {
  sha256: string; // hex
  expires?: number; // ms epoch
}

function hashesOf(tokens: readonly HashedToken[]): Buffer[] {
  let hashes = decodedHashes.get(tokens);
  if (!hashes) decodedHashes.set(tokens, (hashes = tokens.map((t) => Buffer.from(t.sha256, 'hex'))));
  return hashes;
}

/** Finds the configured token matching `token`, comparing every candidate in constant time. */
export function matchStaticToken<T extends HashedToken>(token: string, tokens: readonly T[], now: number): T | undefined {
  if (token.length === 0 || token.length > MAX_BEARER_LENGTH) return undefined;
  const h = hashToken(token);
  const hashes = hashesOf(tokens);
  let found: T | undefined;
  for (let i = 0; i < tokens.length; i++) {
    const want = hashes[i];
    // Check every entry (no early exit) so timing does not depend on which one matched.
    if (want.length === h.length && timingSafeEqual(want, h) && !found) found = tokens[i];
  }
  if (found && found.expires !== undefined && found.expires <= now) return undefined;
  return found;
}
