/**
 * The jit-sshd HTTP API as the CLI sees it. node:http rather than fetch: fetch loads undici
 * on first use (~40 ms), and `jit-ssh login` is on a person's critical path.
 *
 * Every failure becomes a JitError: a server that cannot be reached is 'unreachable' (exit 3),
 * an HTTP error keeps the server's own code and message, so the CLI prints what the CA said.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ERROR_CODES, JitError, type ErrorCode } from '../errors.js';
import { canonicalServerUrl, isLoopbackHttpUrl } from '../policy/server-url.js';
import type { AuthMethods, ChallengeResponse, IssuedView, OidcTokenResponse, PendingView, RequestView, TokenResponse } from '../service/views.js';
import type { AllowedTarget, AllowedTask } from '../policy/explain.js';

export const DEFAULT_SERVER = 'http://127.0.0.1:7422';

/** How long one HTTP exchange may take before the server counts as unreachable. */
const TIMEOUT_MS = 15_000;

export interface ApiClientOptions {
  server: string;
  /** allow plain http beyond loopback (--insecure-http): tokens and logins then cross the network in clear */
  insecureHttp?: boolean;
  /** A fixed bearer token (--token / JITSSH_TOKEN): never refreshed. */
  token?: string;
  /**
   * Produces a fresh token (SSH-key login). Called lazily before the first authenticated call
   * and once more when the server says the token is no longer valid.
   */
  authenticate?: (api: ApiClient) => Promise<string>;
}

/** The API's own response types (type-only imports: nothing of the server loads in the CLI). */
export type IssuedRequest = IssuedView & { account?: string; target?: string; task?: string };
export type PendingRequest = PendingView;
export type { AuthMethods, ChallengeResponse, OidcTokenResponse, RequestView, TokenResponse };

export type { AllowedTarget, AllowedTask };

export interface NewRequest {
  target: string;
  task: string;
  publicKey: string;
  reason?: string;
  ticket?: string;
  ttl?: string;
  account?: string;
}

export class ApiClient {
  readonly server: string;
  private token?: string;
  private readonly fixedToken: boolean;
  private readonly authenticate?: (api: ApiClient) => Promise<string>;
  private authenticating?: Promise<string>;

  constructor(opts: ApiClientOptions) {
    this.server = normaliseServer(opts.server);
    if (this.server.startsWith('http:') && !isLoopbackHttpUrl(this.server) && !opts.insecureHttp) {
      throw new JitError(
        'invalid_field',
        `--server: refusing plain http to ${this.server}: your login and tokens would cross the network in clear text. ` +
          `Use https, or --insecure-http if you accept that risk`,
      );
    }
    this.token = opts.token || undefined;
    this.fixedToken = Boolean(opts.token);
    this.authenticate = opts.authenticate;
  }

  challenge(user: string): Promise<ChallengeResponse> {
    return this.call('POST', '/v1/auth/challenge', { user }, false);
  }

  exchangeSignature(user: string, challenge: string, signature: string): Promise<TokenResponse> {
    return this.call('POST', '/v1/auth/token', { user, challenge, signature }, false);
  }

  authMethods(): Promise<AuthMethods> {
    return this.call('GET', '/v1/auth/methods', undefined, false);
  }

  exchangeIdToken(idToken: string): Promise<OidcTokenResponse> {
    return this.call('POST', '/v1/auth/oidc', { idToken }, false);
  }

  createRequest(body: NewRequest): Promise<IssuedRequest | PendingRequest> {
    return this.authed('POST', '/v1/requests', stripUndefined(body));
  }

  getRequest(id: string): Promise<RequestView> {
    return this.authed('GET', `/v1/requests/${encodeURIComponent(id)}`);
  }

  listRequests(status?: string): Promise<{ requests: RequestView[] }> {
    return this.authed('GET', `/v1/requests${status ? `?status=${encodeURIComponent(status)}` : ''}`);
  }

  approve(id: string, comment?: string): Promise<RequestView> {
    return this.authed('POST', `/v1/requests/${encodeURIComponent(id)}/approve`, stripUndefined({ comment }));
  }

  deny(id: string, reason: string): Promise<RequestView> {
    return this.authed('POST', `/v1/requests/${encodeURIComponent(id)}/deny`, { reason });
  }

  revokeRequest(id: string, reason?: string): Promise<RequestView> {
    return this.authed('POST', `/v1/requests/${encodeURIComponent(id)}/revoke`, stripUndefined({ reason }));
  }

  revokeSerial(serial: string, reason?: string): Promise<{ revoked: { id: string; serial: string | null }[] }> {
    return this.authed('POST', '/v1/revocations', stripUndefined({ serial, reason }));
  }

  revokeKey(fingerprint: string, reason?: string): Promise<{ revoked: { id: string; serial: string | null }[] }> {
    return this.authed('POST', '/v1/revocations', stripUndefined({ fingerprint, reason }));
  }

  liftKeyRevocation(fingerprint: string, reason?: string): Promise<{ lifted: { fingerprint: string } }> {
    return this.authed('POST', '/v1/revocations/lift', stripUndefined({ fingerprint, reason }));
  }

  /** The host CA public key lines (for @cert-authority in known_hosts); no login needed. */
  async hostCaKeys(): Promise<string[]> {
    const r = await this.call<{ keys?: unknown }>('GET', '/v1/ca?type=host&format=json', undefined, false);
    return Array.isArray(r.keys) ? r.keys.filter((k): k is string => typeof k === 'string') : [];
  }

  targets(): Promise<AllowedTarget[]> {
    return this.authed('GET', '/v1/targets');
  }

  /** Makes sure a token is at hand (logs in if needed) without another call. */
  async ensureToken(): Promise<string> {
    if (this.token) return this.token;
    return this.refreshToken();
  }

  private async refreshToken(): Promise<string> {
    if (!this.authenticate) {
      throw new JitError('unauthenticated', 'no credentials: give --token, or an SSH key (ssh-agent or --identity)');
    }
    // Concurrent calls share one login instead of each signing a challenge.
    this.authenticating ??= this.authenticate(this).finally(() => (this.authenticating = undefined));
    this.token = await this.authenticating;
    return this.token;
  }

  private async authed<T>(method: string, path: string, body?: unknown): Promise<T> {
    await this.ensureToken();
    try {
      return await this.call<T>(method, path, body, true);
    } catch (e) {
      // A cached token may have expired or the daemon restarted: log in again once.
      if (e instanceof JitError && e.code === 'unauthenticated' && !this.fixedToken && this.authenticate) {
        this.token = undefined;
        await this.refreshToken();
        return this.call<T>(method, path, body, true);
      }
      throw e;
    }
  }

  private call<T>(method: string, path: string, body: unknown, withToken: boolean): Promise<T> {
    const url = new URL(this.server + path);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { accept: 'application/json' };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    if (withToken && this.token) headers.authorization = `Bearer ${this.token}`;
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;

    return new Promise<T>((resolve, reject) => {
      const req = send(url, { method, headers, timeout: TIMEOUT_MS }, (res) => {
        readBody(res).then(
          (text) => {
            try {
              resolve(interpret<T>(res.statusCode ?? 0, text, method, path));
            } catch (e) {
              reject(e);
            }
          },
          (err: unknown) => reject(unreachable(this.server, err)),
        );
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000}s`)));
      req.on('error', (err) => reject(unreachable(this.server, err)));
      req.end(payload);
    });
  }
}

function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

function interpret<T>(status: number, text: string, method: string, path: string): T {
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (status >= 200 && status < 300) {
    if (parsed === undefined) throw new JitError('internal', `jit-sshd sent a non-JSON answer to ${method} ${path}`);
    return parsed as T;
  }
  const err = (parsed as { error?: { code?: string; message?: string; details?: unknown } } | undefined)?.error;
  const code = err?.code && err.code in ERROR_CODES ? (err.code as ErrorCode) : codeForStatus(status);
  const message = err?.message ?? `jit-sshd answered ${status} to ${method} ${path}`;
  throw new JitError(code, message, { details: { status, ...(err?.details !== undefined ? { server: err.details } : {}) } });
}

function codeForStatus(status: number): ErrorCode {
  if (status === 401) return 'unauthenticated';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 409) return 'conflict';
  if (status === 429) return 'rate_limited';
  if (status === 502 || status === 503 || status === 504) return 'unavailable';
  if (status >= 400 && status < 500) return 'bad_request';
  return 'internal';
}

function unreachable(server: string, err: unknown): JitError {
  const e = err as NodeJS.ErrnoException;
  const why = e?.code ?? e?.message ?? String(err);
  return new JitError('unreachable', `cannot reach jit-sshd at ${server} (${why}); is it running? (--server / JITSSH_SERVER)`, {
    cause: err,
  });
}

/** Checks the URL once, so a typo is a usage error and not "unreachable". */
export function normaliseServer(server: string): string {
  const canonical = canonicalServerUrl(server);
  if (canonical === null) {
    throw new JitError('invalid_field', `--server: '${server}' must be an http:// or https:// URL without query or credentials (like ${DEFAULT_SERVER})`);
  }
  return canonical;
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
