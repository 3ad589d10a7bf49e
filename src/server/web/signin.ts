/**
 * Sign-in to the web pages: OpenID Connect authorization code flow with PKCE, state and nonce,
 * run by the daemon itself (openid-client). The client is oidc.webClientId (else clientId):
 * confidential when oidc.clientSecret is set, else public (PKCE only). The ID token then goes through the same checks as the CLI's
 * (signature, audience, claim mapping, disabled users, single use): openSsoSession.
 */
import type { Configuration } from 'openid-client';
import { JitError } from '../../errors.js';
import type { OidcConfig } from '../../policy/config-schema.js';
import { CALLBACK_PATH, SIGNIN_TTL_MS, type SigninState } from './session.js';

const IDP_DOWN = 'the identity provider cannot be reached; try again shortly';

export class WebSignin {
  private conf?: Promise<Configuration>;

  constructor(
    private readonly oidc: OidcConfig,
    private readonly publicUrl: () => string,
  ) {}

  get redirectUri(): string {
    return new URL(CALLBACK_PATH, this.publicUrl() + '/').href;
  }

  private async configuration(): Promise<Configuration> {
    const client = await import('openid-client');
    this.conf ??= (async () => {
      const issuer = new URL(this.oidc.issuer);
      const auth = this.oidc.clientSecret ? client.ClientSecretBasic(this.oidc.clientSecret) : client.None();
      return client.discovery(issuer, this.oidc.webClientId ?? this.oidc.clientId, undefined, auth, {
        timeout: 5,
        ...(issuer.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {}),
      });
    })();
    try {
      return await this.conf;
    } catch (e) {
      this.conf = undefined; // try discovery again on the next sign-in
      throw new JitError('idp_unavailable', IDP_DOWN, { cause: e });
    }
  }

  /** Where to send the browser, and the state to keep in its sign-in cookie. */
  async start(next: string, now: number): Promise<{ url: string; state: SigninState }> {
    const client = await import('openid-client');
    const conf = await this.configuration();
    const state: SigninState = {
      state: client.randomState(),
      nonce: client.randomNonce(),
      verifier: client.randomPKCECodeVerifier(),
      next,
      expires: now + SIGNIN_TTL_MS,
    };
    const url = client.buildAuthorizationUrl(conf, {
      redirect_uri: this.redirectUri,
      scope: this.oidc.scopes.join(' '),
      response_type: 'code',
      state: state.state,
      nonce: state.nonce,
      code_challenge: await client.calculatePKCECodeChallenge(state.verifier),
      code_challenge_method: 'S256',
    });
    return { url: url.href, state };
  }

  /** The callback's query → the ID token (checked again by openSsoSession). */
  async finish(query: URLSearchParams, s: SigninState): Promise<string> {
    const client = await import('openid-client');
    const conf = await this.configuration();
    const current = new URL(this.redirectUri);
    for (const [k, v] of query) current.searchParams.append(k, v);
    let tokens;
    try {
      tokens = await client.authorizationCodeGrant(conf, current, { pkceCodeVerifier: s.verifier, expectedState: s.state, expectedNonce: s.nonce, idTokenExpected: true });
    } catch (e) {
      const err = e as { code?: string; error?: string; cause?: unknown; name?: string };
      // The IdP not answering is an outage; anything else is a refused sign-in.
      if (err.name === 'TypeError' || err.code === 'OAUTH_TIMEOUT' || (err.cause as { code?: string } | undefined)?.code === 'ECONNREFUSED') {
        throw new JitError('idp_unavailable', IDP_DOWN, { cause: e });
      }
      throw new JitError('unauthenticated', `sign-in refused: ${err.error ?? (e as Error).message}`.slice(0, 200), { cause: e });
    }
    if (!tokens.id_token) throw new JitError('unauthenticated', 'sign-in refused: the identity provider sent no ID token');
    return tokens.id_token;
  }
}
