/**
 * One-time host enrolment tokens, kept as files so the admin CLI (`jit-sshd host token`) can
 * create them while the daemon runs and holds the store lock — the same file-drop pattern as the
 * CA keyring. Each token is a file named by the SHA-256 of the token (the token itself is never
 * stored), holding its target, optional host name and expiry. Using a token renames its file
 * away first: rename is atomic, so exactly one enrolment can ever claim a token, also across
 * processes sharing the directory.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { JitError } from '../errors.js';
import { errorCode, writeFileAtomicSync } from '../files.js';

export const HOST_TOKEN_PREFIX = 'jht_';
const TOKEN_RE = /^jht_[A-Za-z0-9_-]{43}$/;

export interface HostTokenRecord {
  /** Short public id (first hash characters), for audit records and messages. */
  id: string;
  target: string;
  /** The one host name the token allows; absent = every literal host name of the target. */
  host?: string;
  createdAt: string;
  /** Seconds since the epoch. */
  expiresAt: number;
}

/** Why a presented token was refused (audit), or the claimed record. */
export type TokenClaim = { ok: true; record: HostTokenRecord } | { ok: false; why: 'unknown_or_used' | 'expired' | 'malformed'; id?: string };

export const hostTokenDir = (dataDir: string): string => join(dataDir, 'host', 'enrolment-tokens');
const hashOf = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');
const idOf = (hash: string): string => `ht_${hash.slice(0, 12)}`;

/** Creates a token; returns it (shown once) and its record. Expired and used files are swept. */
export function createHostToken(
  dataDir: string,
  opts: { target: string; host?: string; ttlSeconds: number; now?: Date },
): { token: string; record: HostTokenRecord } {
  const now = opts.now ?? new Date();
  const dir = hostTokenDir(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  sweep(dir, now);
  const token = HOST_TOKEN_PREFIX + randomBytes(32).toString('base64url');
  const hash = hashOf(token);
  const record: HostTokenRecord = {
    id: idOf(hash),
    target: opts.target,
    ...(opts.host ? { host: opts.host } : {}),
    createdAt: now.toISOString(),
    expiresAt: Math.floor(now.getTime() / 1000) + opts.ttlSeconds,
  };
  writeFileAtomicSync(join(dir, `${hash}.json`), JSON.stringify(record) + '\n', 0o600);
  return { token, record };
}

function readRecord(path: string): HostTokenRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as HostTokenRecord;
    if (typeof r.target !== 'string' || typeof r.expiresAt !== 'number' || typeof r.id !== 'string') return undefined;
    return r;
  } catch {
    return undefined;
  }
}

/** Looks a token up without using it (for GET /v1/host-config): valid, unused, unexpired. */
export function peekHostToken(dataDir: string, token: string, nowSec: number): HostTokenRecord | undefined {
  if (!TOKEN_RE.test(token)) return undefined;
  const r = readRecord(join(hostTokenDir(dataDir), `${hashOf(token)}.json`));
  return r && r.expiresAt > nowSec ? r : undefined;
}

/** Uses a token up (whatever happens next) and returns its record, or why it cannot be used. */
export function claimHostToken(dataDir: string, token: string, nowSec: number): TokenClaim {
  if (typeof token !== 'string' || !TOKEN_RE.test(token)) return { ok: false, why: 'malformed' };
  const hash = hashOf(token);
  const file = join(hostTokenDir(dataDir), `${hash}.json`);
  const used = join(hostTokenDir(dataDir), `${hash}.used`);
  try {
    renameSync(file, used);
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return { ok: false, why: 'unknown_or_used', id: idOf(hash) };
    throw new JitError('unavailable', `cannot use enrolment token store: ${errorCode(e)}`, { cause: e });
  }
  const record = readRecord(used);
  if (!record) return { ok: false, why: 'malformed', id: idOf(hash) };
  if (record.expiresAt <= nowSec) return { ok: false, why: 'expired', id: record.id };
  return { ok: true, record };
}

/** Removes token files that can no longer be used (expired, or used more than a day ago). */
function sweep(dir: string, now: Date): void {
  const nowSec = Math.floor(now.getTime() / 1000);
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    try {
      if (name.endsWith('.used') && statSync(path).mtimeMs < now.getTime() - 86_400_000) unlinkSync(path);
      else if (name.endsWith('.json') && (readRecord(path)?.expiresAt ?? 0) <= nowSec) unlinkSync(path);
    } catch {
      // another sweep got there first
    }
  }
}
