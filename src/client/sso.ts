/**
 * `jit-ssh login --sso`: get an ID token from the server's identity provider and trade it for a
 * jit-ssh session token. Two grants, both done by openid-client (no hand-written OAuth):
 *  - browser: authorization code + PKCE (S256) with a loopback redirect
 *    http://127.0.0.1:<random port>/callback; `state` and `nonce` are checked;
 *  - device: RFC 8628 device authorization grant, for machines without a browser.
 * Loaded only when SSO is used (openid-client pulls in fetch/undici).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as client from 'openid-client';
import { JitError } from '../errors.js';
import { isLoopbackHost } from '../policy/ip.js';
import type { ApiClient, AuthMethods, OidcTokenResponse } from './api.js';
import { openBrowser } from './sso-browser.js';

export type SsoMode = 'browser' | 'device';

export interface SsoIo {
  /** Progress for the person at the keyboard (stderr). */
  note(line: string): void;
  /** How long to wait for the person to finish signing in (default 5 minutes). */
  timeoutMs?: number;
}

type Offer = NonNullable<AuthMethods['oidc']>;

/** The whole SSO login: which IdP (from the server), its ID token, then the server's session token. */
export async function ssoLogin(api: ApiClient, mode: SsoMode, io: SsoIo): Promise<OidcTokenResponse> {
  const methods = await api.authMethods();
  if (!methods.oidc) throw new JitError('unauthenticated', `${api.server} does not offer SSO (no oidc: in its jit-sshd.yaml); log in with an SSH key`);
  const idToken = mode === 'device' ? await deviceFlow(methods.oidc, io) : await browserFlow(methods.oidc, io);
  const session = await api.exchangeIdToken(idToken);
  io.note(`signed in with SSO as ${session.user}${session.groups.length ? ` (groups: ${session.groups.join(', ')})` : ''}`);
  return session;
}

async function discover(offer: Offer): Promise<client.Configuration> {
  const issuer = new URL(offer.issuer);
  // Same rule as the daemon (one loopback rule): plain http only for an IdP on this machine;
  // a name like 127.attacker.example is not loopback.
  const loopback = isLoopbackHost(issuer.hostname);
  if (issuer.protocol !== 'https:' && !(issuer.protocol === 'http:' && loopback)) {
    throw new JitError('invalid_config', `the server names an insecure identity provider (${offer.issuer}); refusing to sign in there`);
  }
  try {
    return await client.discovery(issuer, offer.clientId, undefined, client.None(), {
      timeout: 15,
      ...(issuer.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {}),
    });
  } catch (e) {
    throw new JitError('idp_unavailable', `cannot reach the identity provider ${offer.issuer}: ${(e as Error).message}`, { cause: e });
  }
}

/** RFC 8628: show the code and URL, poll at the interval the IdP asks for. */
async function deviceFlow(offer: Offer, io: SsoIo): Promise<string> {
  const config = await discover(offer);
  const started = await client.initiateDeviceAuthorization(config, { scope: offer.scopes.join(' ') });
  io.note(
    `To sign in, open ${started.verification_uri} on any device and enter the code ${started.user_code} (it expires in ${Math.round(started.expires_in / 60)} min)` +
      (started.verification_uri_complete ? `\n  or open ${started.verification_uri_complete} (the code filled in)` : ''),
  );
  try {
    const tokens = await client.pollDeviceAuthorizationGrant(config, started, undefined, { signal: AbortSignal.timeout(io.timeoutMs ?? started.expires_in * 1000) });
    return idTokenOf(tokens);
  } catch (e) {
    throw asSsoError(e);
  }
}

/** Authorization code + PKCE through the person's browser and a one-shot loopback listener. */
async function browserFlow(offer: Offer, io: SsoIo): Promise<string> {
  const config = await discover(offer);
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const listener = await listenLoopback();
  try {
    const redirectUri = `http://127.0.0.1:${listener.port}/callback`;
    const authUrl = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: offer.scopes.join(' '),
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    const opened = openBrowser(authUrl.href);
    io.note(`${opened ? 'Your browser should open; if not, open' : 'Open'} this URL to sign in:\n  ${authUrl.href}`);
    const { url: callbackUrl, respond } = await listener.next(io.timeoutMs ?? 5 * 60_000);
    try {
      const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: verifier,
        expectedState: state,
        expectedNonce: nonce,
        idTokenExpected: true,
      });
      respond(200, 'Signed in to jit-ssh. You can close this tab and return to the terminal.');
      return idTokenOf(tokens);
    } catch (e) {
      respond(400, 'Sign-in failed; see the terminal for why.');
      throw asSsoError(e);
    }
  } finally {
    listener.close();
  }
}

function idTokenOf(tokens: { id_token?: string }): string {
  if (!tokens.id_token) throw new JitError('unauthenticated', 'the identity provider returned no ID token (is the openid scope allowed for this client?)');
  return tokens.id_token;
}

function asSsoError(e: unknown): JitError {
  if (e instanceof JitError) return e;
  const err = e as { name?: string; error?: string; error_description?: string; message?: string; cause?: { message?: string } };
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return new JitError('unauthenticated', 'SSO sign-in timed out; run the command again');
  // openid-client says "invalid response encountered" and puts the check that failed in `cause`.
  const why = err.error
    ? `${err.error}${err.error_description ? `: ${err.error_description}` : ''}`
    : `${err.message ?? String(e)}${err.cause?.message ? ` (${err.cause.message})` : ''}`;
  return new JitError('unauthenticated', `SSO sign-in failed: ${why}`, { cause: e });
}

interface Callback {
  url: URL;
  respond(status: number, text: string): void;
}

/**
 * 127.0.0.1 on a random port; the first request to /callback is the answer (anything else gets
 * 404). Only this machine can reach it, and the code in it is useless without our PKCE verifier.
 */
async function listenLoopback(): Promise<{ port: number; next(timeoutMs: number): Promise<Callback>; close(): void }> {
  let deliver: ((c: Callback) => void) | undefined;
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method !== 'GET' || url.pathname !== '/callback' || !deliver) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const d = deliver;
    deliver = undefined;
    d({
      url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}${req.url}`),
      respond: (status, text) => {
        res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' });
        res.end(`<!doctype html><meta charset="utf-8"><title>jit-ssh</title><p>${text}</p>`);
      },
    });
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => res());
  });
  return {
    port: (server.address() as AddressInfo).port,
    next: (timeoutMs) =>
      new Promise<Callback>((resolve, reject) => {
        const timer = setTimeout(() => reject(new JitError('unauthenticated', `no sign-in within ${Math.round(timeoutMs / 1000)} s; run the command again`)), timeoutMs);
        deliver = (c) => {
          clearTimeout(timer);
          resolve(c);
        };
      }),
    close: () => {
      server.close();
      server.closeAllConnections();
    },
  };
}

/**
 * After every SSH key was refused: SSO in the browser, when the server offers it and a person is
 * at a terminal to finish it (a script would otherwise wait minutes for nobody). Else the keys'
 * own error stands, with a hint when SSO would have worked.
 */
export async function ssoAfterKeysFailed(api: ApiClient, keysError: unknown, io: SsoIo & { interactive: boolean }): Promise<OidcTokenResponse> {
  if (!(keysError instanceof JitError) || keysError.code !== 'unauthenticated') throw keysError;
  const methods = await api.authMethods().catch(() => undefined);
  if (!methods?.oidc) throw keysError;
  if (!io.interactive) throw new JitError('unauthenticated', `${keysError.message}; this server offers SSO: run again with --sso (browser) or --sso=device`);
  io.note(`${keysError.message}; signing in with SSO instead`);
  return ssoLogin(api, 'browser', io);
}

export function parseSsoMode(v: string): SsoMode {
  if (v === 'browser') return 'browser';
  if (v === 'device') return 'device';
  throw new JitError('invalid_field', `--sso: '${v}' is not a sign-in mode (use --sso for the browser, --sso=device for a code)`);
}
