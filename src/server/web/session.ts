/**
 * The web pages' cookies and CSRF tokens.
 *  - session: the jit-ssh session token (the same kind the API takes as a bearer), HttpOnly,
 *    SameSite=Strict, Secure and __Host- prefixed when served over TLS.
 *  - sign-in: state, nonce and PKCE verifier of one sign-in in flight, HMAC-signed, 10 minutes,
 *    SameSite=Lax and only sent to the callback: the IdP's redirect back is a cross-site
 *    navigation, on which a Strict cookie would not be sent.
 *  - CSRF: HMAC(key, session token), in a hidden field of every form; compared in constant time.
 * The key is random per process: sessions live in this process's memory anyway.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Request, Response } from 'express';

export const SIGNIN_TTL_MS = 10 * 60_000;
export const CALLBACK_PATH = '/ui/callback';

export interface SigninState {
  state: string;
  nonce: string;
  verifier: string;
  /** Where to go after signing in: a path under /ui/. */
  next: string;
  /** ms since the epoch */
  expires: number;
}

export class WebSessions {
  readonly sessionCookie: string;
  readonly signinCookie: string;

  constructor(
    private readonly key: Buffer,
    private readonly secure: boolean,
  ) {
    this.sessionCookie = secure ? '__Host-jit_session' : 'jit_session';
    this.signinCookie = secure ? '__Secure-jit_signin' : 'jit_signin';
  }

  private mac(purpose: string, value: string): string {
    return createHmac('sha256', this.key).update(`${purpose}\0${value}`).digest('base64url');
  }

  csrfToken(session: string): string {
    return this.mac('csrf', session);
  }

  csrfValid(session: string, token: unknown): boolean {
    if (typeof token !== 'string' || token.length > 100) return false;
    const want = Buffer.from(this.csrfToken(session));
    const got = Buffer.from(token);
    return want.length === got.length && timingSafeEqual(want, got);
  }

  sessionOf(req: Request): string | undefined {
    return cookies(req).get(this.sessionCookie);
  }

  setSession(res: Response, token: string, expiresAt: number, now: number): void {
    res.append('Set-Cookie', this.cookie(this.sessionCookie, token, { path: '/', sameSite: 'Strict', maxAgeSec: Math.max(0, Math.floor((expiresAt - now) / 1000)) }));
  }

  clearSession(res: Response): void {
    res.append('Set-Cookie', this.cookie(this.sessionCookie, '', { path: '/', sameSite: 'Strict', maxAgeSec: 0 }));
  }

  setSignin(res: Response, s: SigninState): void {
    const body = Buffer.from(JSON.stringify(s)).toString('base64url');
    const value = `${body}.${this.mac('signin', body)}`;
    res.append('Set-Cookie', this.cookie(this.signinCookie, value, { path: CALLBACK_PATH, sameSite: 'Lax', maxAgeSec: SIGNIN_TTL_MS / 1000 }));
  }

  clearSignin(res: Response): void {
    res.append('Set-Cookie', this.cookie(this.signinCookie, '', { path: CALLBACK_PATH, sameSite: 'Lax', maxAgeSec: 0 }));
  }

  /** The sign-in in flight, if its cookie is ours, intact and fresh. */
  signinOf(req: Request, now: number): SigninState | undefined {
    const raw = cookies(req).get(this.signinCookie);
    const dot = raw?.lastIndexOf('.') ?? -1;
    if (!raw || dot < 0) return undefined;
    const body = raw.slice(0, dot);
    const want = Buffer.from(this.mac('signin', body));
    const got = Buffer.from(raw.slice(dot + 1));
    if (want.length !== got.length || !timingSafeEqual(want, got)) return undefined;
    try {
      const s = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as SigninState;
      return typeof s.expires === 'number' && s.expires > now ? s : undefined;
    } catch {
      return undefined;
    }
  }

  private cookie(name: string, value: string, o: { path: string; sameSite: 'Strict' | 'Lax'; maxAgeSec: number }): string {
    return `${name}=${value}; Path=${o.path}; Max-Age=${o.maxAgeSec}; HttpOnly; SameSite=${o.sameSite}${this.secure ? '; Secure' : ''}`;
  }
}

/** Cookie header → name/value map (first wins; at most 50 cookies and 8 KiB looked at). */
export function cookies(req: Request): Map<string, string> {
  const out = new Map<string, string>();
  const header = (req.get('cookie') ?? '').slice(0, 8192);
  for (const part of header.split(';').slice(0, 50)) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (!out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

/** Only our own pages may be the destination after sign-in (no open redirect). */
export function safeNext(v: unknown): string {
  return typeof v === 'string' && /^\/ui\/[A-Za-z0-9_./?=&%:+,~-]{0,300}$/.test(v) && !v.includes('//') && !v.includes('..') ? v : '/ui/';
}
