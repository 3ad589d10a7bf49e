/**
 * The bearer token from the last SSH-key login, kept 0600 in the certificate dir until it
 * expires, so `jit-ssh status`, `done`, `approve` right after a login do not sign again. One file
 * per server and user; a token near its end is ignored (the server would refuse it mid-command).
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writePrivateFile } from './keyfiles.js';

/** Tokens with less than this left are not reused. */
const MARGIN_MS = 30_000;

interface CachedToken {
  server: string;
  user: string;
  token: string;
  expiresAt: string;
}

function cacheFile(dir: string, server: string, user: string): string {
  const h = createHash('sha256').update(`${server}\n${user}`).digest('hex').slice(0, 16);
  return join(dir, `.token-${h}.json`);
}

export function readCachedToken(dir: string, server: string, user: string, nowMs = Date.now()): string | undefined {
  try {
    const c = JSON.parse(readFileSync(cacheFile(dir, server, user), 'utf8')) as CachedToken;
    if (c.server !== server || c.user !== user) return undefined;
    if (!(Date.parse(c.expiresAt) - MARGIN_MS > nowMs)) return undefined;
    return c.token;
  } catch {
    return undefined;
  }
}

export function writeCachedToken(dir: string, server: string, user: string, token: string, expiresAt: string): void {
  try {
    const c: CachedToken = { server, user, token, expiresAt };
    writePrivateFile(cacheFile(dir, server, user), JSON.stringify(c) + '\n');
  } catch {
    // A cache that cannot be written only costs a signature next time.
  }
}

export function forgetCachedToken(dir: string, server: string, user: string): void {
  rmSync(cacheFile(dir, server, user), { force: true });
}
