/**
 * Shared bits of the service tests: a settable clock, per-user sessions that re-login when the
 * clock has moved past the token lifetime, and a reader of the daemon's audit.jsonl.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunningDaemon } from '../../src/daemon.js';
import { api, login, subjectKey, type TestEnv } from '../helpers/daemon.js';

export interface TestClock {
  now(): number;
  set(ms: number): void;
  advance(ms: number): void;
}

/** Starts at `start` (ms) and moves only when told to. */
export function manualClock(start: number): TestClock {
  let t = start;
  return {
    now: () => t,
    set: (ms) => void (t = ms),
    advance: (ms) => void (t += ms),
  };
}

export const MIN = 60_000;

/** Bearer tokens by user, renewed when the (possibly injected) clock has moved 5 minutes. */
export function sessions(d: RunningDaemon, env: TestEnv, now: () => number = () => d.deps.clock.now()) {
  const cache = new Map<string, { token: string; at: number }>();
  return async (user: string): Promise<string> => {
    const hit = cache.get(user);
    if (hit && Math.abs(now() - hit.at) < 5 * MIN) return hit.token;
    const token = await login(d.url, user, env.keys[user]);
    cache.set(user, { token, at: now() });
    return token;
  };
}

export type Session = ReturnType<typeof sessions>;

export interface AuditLine {
  type: string;
  seq: number;
  time: string;
  [k: string]: any;
}

export function auditRecords(env: TestEnv): AuditLine[] {
  const file = join(env.dataDir, 'audit.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as AuditLine);
}

/** The audit records about one request id, in order. */
export function auditOf(env: TestEnv, id: string): AuditLine[] {
  return auditRecords(env).filter((r) => r.id === id);
}

export async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

let keyCounter = 0;

/** POST /v1/requests with a fresh subject key; returns the response and the key. */
export async function requestAccess(
  d: RunningDaemon,
  env: TestEnv,
  token: string,
  body: { target: string; task: string; ticket?: string; ttl?: string; reason?: string; account?: string },
) {
  const key = subjectKey(env, `subject${++keyCounter}`);
  const res = await api(d.url, 'POST', '/v1/requests', { ...body, publicKey: key.publicLine }, token);
  return { ...res, key };
}
