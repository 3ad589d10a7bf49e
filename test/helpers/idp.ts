/**
 * A real OpenID Provider for tests: `oidc-provider` (the certified Node implementation) on
 * 127.0.0.1, with a small account store (users with `groups` claims), one public native client
 * (authorization code + PKCE with loopback redirects, device grant), signing keys the test can
 * also use to mint tokens of its own, and key rotation while it runs.
 *
 * Its dev login page accepts any password: the login name picks the account.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import Provider from 'oidc-provider';

/** oidc-provider's koa context (the package has no type declarations). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type ProviderContext = any;

export interface IdpAccount {
  preferred_username?: string;
  email?: string;
  email_verified?: boolean;
  /** Anything: tests also send groups that are not a list of names. */
  groups?: unknown;
}

export interface SigningKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: CryptoKey;
  publicJwk: JWK;
  privateJwk: JWK;
}

export interface TestIdp {
  issuer: string;
  port: number;
  clientId: string;
  /** Keys the IdP signs with now (first = used for ID tokens) and publishes in its JWKS. */
  keys: SigningKey[];
  /** Signs a token with one of the IdP's keys (default the first), on top of sane defaults. */
  signIdToken(claims: JWTPayload, opts?: { key?: SigningKey; header?: Record<string, unknown> }): Promise<string>;
  /** Replaces the signing keys: the JWKS then lists only the new ones. */
  rotateKeys(): Promise<SigningKey[]>;
  /** Milliseconds the IdP spent answering requests (the bench subtracts it). */
  busyMs(): number;
  /** Requests to the JWKS endpoint so far. */
  jwksFetches(): number;
  /**
   * performance.now() when the last device authorization was answered and when its tokens were
   * handed out: the span in between is the person's and the IdP's time, not the CLI's.
   */
  deviceWindow(): DeviceWindow;
  close(): Promise<void>;
}

export interface DeviceWindow {
  started?: number;
  tokens?: number;
  /** ms spent answering requests outside such a window (discovery, the device request), cumulative */
  busyOutside: number;
}

export const IDP_CLIENT_ID = 'jit-ssh-cli';

export async function newSigningKey(alg: 'RS256' | 'ES256' = 'RS256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `${alg.toLowerCase()}-${Math.random().toString(36).slice(2, 10)}`;
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey: privateKey as CryptoKey, publicJwk, privateJwk };
}

/**
 * A confidential web client (the daemon's web sign-in): with its own clientId beside the public
 * native one, or without one in place of it.
 */
export interface WebClient {
  clientId?: string;
  clientSecret: string;
  redirectUris: string[];
}

export async function startIdp(opts: { accounts: Record<string, IdpAccount>; port?: number; clientId?: string; webClient?: WebClient }): Promise<TestIdp> {
  const clientId = opts.clientId ?? IDP_CLIENT_ID;
  let busy = 0;
  let jwksFetches = 0;
  const device: DeviceWindow = { busyOutside: 0 };
  let keys = [await newSigningKey('RS256'), await newSigningKey('ES256')];
  const server: Server = createServer();
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(opts.port ?? 0, '127.0.0.1', () => res());
  });
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;

  const build = (signing: SigningKey[]) => {
    const provider = new Provider(issuer, {
      clients: [
        ...(opts.webClient?.clientId
          ? [
              {
                client_id: opts.webClient.clientId,
                client_secret: opts.webClient.clientSecret,
                application_type: 'web' as const,
                token_endpoint_auth_method: 'client_secret_basic',
                redirect_uris: opts.webClient.redirectUris,
                grant_types: ['authorization_code'],
                response_types: ['code' as const],
              },
            ]
          : []),
        opts.webClient && !opts.webClient.clientId
          ? {
              client_id: clientId,
              client_secret: opts.webClient.clientSecret,
              application_type: 'web',
              token_endpoint_auth_method: 'client_secret_basic',
              redirect_uris: opts.webClient.redirectUris,
              grant_types: ['authorization_code'],
              response_types: ['code'],
            }
          : {
              client_id: clientId,
              application_type: 'native',
              token_endpoint_auth_method: 'none',
              redirect_uris: ['http://127.0.0.1/callback'],
              grant_types: ['authorization_code', 'urn:ietf:params:oauth:grant-type:device_code'],
              response_types: ['code'],
            },
      ],
      jwks: { keys: signing.map((k) => k.privateJwk) },
      scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
      claims: { openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email', 'email_verified'], groups: ['groups'] },
      // Put the scope's claims into the ID token itself, as Okta, Entra and Keycloak can.
      conformIdTokenClaims: false,
      features: { devInteractions: { enabled: true }, deviceFlow: { enabled: true } },
      pkce: { required: () => true },
      ttl: { IdToken: 300, AccessToken: 300, DeviceCode: 300, Interaction: 300, Session: 300, Grant: 300 },
      cookies: { keys: ['test-only-cookie-key'] },
      findAccount: (_ctx: unknown, id: string) => {
        const a = opts.accounts[id];
        if (!a) return undefined;
        return { accountId: id, claims: () => ({ sub: id, ...a }) as { sub: string } };
      },
      // First-party client: no consent page, every requested scope granted.
      loadExistingGrant: async (ctx: ProviderContext) => {
        const existing = ctx.oidc.result?.consent?.grantId || ctx.oidc.session!.grantIdFor(ctx.oidc.client!.clientId);
        if (existing) return ctx.oidc.provider.Grant.find(existing);
        const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client!.clientId, accountId: ctx.oidc.session!.accountId });
        grant.addOIDCScope('openid profile email groups');
        await grant.save();
        return grant;
      },
    });
    // oidc-provider sends no polling interval (clients then wait 5 s); 1 s keeps tests short.
    provider.use(async (ctx: ProviderContext, next: () => Promise<void>) => {
      const t0 = performance.now();
      const inWindow = device.started !== undefined && device.tokens === undefined;
      await next();
      if (!inWindow) device.busyOutside += performance.now() - t0;
      if (ctx.path === '/device/auth' && ctx.body && typeof ctx.body === 'object') {
        (ctx.body as Record<string, unknown>).interval = 1;
        device.started = performance.now();
        device.tokens = undefined;
      }
      if (ctx.path === '/token' && ctx.status === 200) device.tokens = performance.now();
      if (ctx.path === '/jwks') jwksFetches++;
    });
    return provider.callback();
  };
  let handler = build(keys);
  server.on('request', (req, res) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => (busy += Number(process.hrtime.bigint() - started) / 1e6));
    handler(req, res);
  });

  return {
    issuer,
    port,
    clientId,
    get keys() {
      return keys;
    },
    async signIdToken(claims, o = {}) {
      const key = o.key ?? keys[0];
      const now = Math.floor(Date.now() / 1000);
      // A fresh jti: two tokens with the same claims in the same second must still differ.
      return new SignJWT({ iss: issuer, aud: clientId, sub: 'alice', iat: now, exp: now + 300, jti: randomUUID(), preferred_username: 'alice', ...claims })
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...o.header })
        .sign(key.privateKey);
    },
    async rotateKeys() {
      keys = [await newSigningKey('RS256')];
      handler = build(keys);
      return keys;
    },
    busyMs: () => busy,
    jwksFetches: () => jwksFetches,
    deviceWindow: () => ({ ...device }),
    async close() {
      await new Promise<void>((res) => {
        server.close(() => res());
        server.closeAllConnections();
      });
    },
  };
}
