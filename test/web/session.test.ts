/** Web session helpers: where sign-in may return to, CSRF tokens, the signed sign-in state. */
import type { Request, Response } from 'express';
import { describe, expect, it } from 'vitest';
import { safeNext, WebSessions, type SigninState } from '../../src/server/web/session.js';

const req = (cookie: string) => ({ get: (h: string) => (h.toLowerCase() === 'cookie' ? cookie : undefined) }) as unknown as Request;
function res() {
  const set: string[] = [];
  return { set, r: { append: (_: string, v: string) => set.push(v) } as unknown as Response };
}

describe('web sessions', () => {
  it('ok/after sign-in only our own pages are destinations (no open redirect)', () => {
    expect(safeNext('/ui/requests/req_abc')).toBe('/ui/requests/req_abc');
    expect(safeNext('/ui/report?target=prod-db&since=2026-11-01T12:00Z')).toBe('/ui/report?target=prod-db&since=2026-11-01T12:00Z');
    for (const bad of ['https://evil.example/ui/', '//evil.example/ui/', '/ui//evil.example', '/ui/../v1/ca', '/v1/ca', '/ui/"><script>', 42, undefined]) {
      expect(safeNext(bad)).toBe('/ui/');
    }
  });

  it('ok/CSRF tokens are per session and per process key', () => {
    const a = new WebSessions(Buffer.alloc(32, 1), false);
    const b = new WebSessions(Buffer.alloc(32, 2), false);
    const t = a.csrfToken('jit_session-one');
    expect(a.csrfValid('jit_session-one', t)).toBe(true);
    expect(a.csrfValid('jit_session-two', t)).toBe(false);
    expect(b.csrfValid('jit_session-one', t)).toBe(false);
    expect(a.csrfValid('jit_session-one', undefined)).toBe(false);
    expect(a.csrfValid('jit_session-one', t.slice(1))).toBe(false);
  });

  it('ok/the sign-in state cookie is signed, Lax, scoped to the callback, and expires', () => {
    const w = new WebSessions(Buffer.alloc(32, 3), true);
    const { set, r } = res();
    const state: SigninState = { state: 's', nonce: 'n', verifier: 'v', next: '/ui/', expires: 1000 };
    w.setSignin(r, state);
    expect(set[0]).toMatch(/^__Secure-jit_signin=[^;]+; Path=\/ui\/callback; Max-Age=600; HttpOnly; SameSite=Lax; Secure$/);
    const value = set[0].split(';')[0];
    expect(w.signinOf(req(value), 999)).toEqual(state);
    expect(w.signinOf(req(value), 1000)).toBeUndefined(); // expired
    const [body, mac] = value.split('=')[1].split('.');
    const forged = Buffer.from(JSON.stringify({ ...state, next: '/ui/x' })).toString('base64url');
    expect(w.signinOf(req(`__Secure-jit_signin=${forged}.${mac}`), 0)).toBeUndefined();
    expect(w.signinOf(req(`__Secure-jit_signin=${body}.${mac}`), 0)).toEqual(state);
  });

  it('ok/the session cookie is HttpOnly, SameSite=Strict, and __Host-/Secure with TLS', () => {
    const { set, r } = res();
    new WebSessions(Buffer.alloc(32), true).setSession(r, 'jit_tok', 600_000, 0);
    expect(set[0]).toBe('__Host-jit_session=jit_tok; Path=/; Max-Age=600; HttpOnly; SameSite=Strict; Secure');
    const plain = res();
    new WebSessions(Buffer.alloc(32), false).setSession(plain.r, 'jit_tok', 600_000, 0);
    expect(plain.set[0]).toBe('jit_session=jit_tok; Path=/; Max-Age=600; HttpOnly; SameSite=Strict');
  });
});
