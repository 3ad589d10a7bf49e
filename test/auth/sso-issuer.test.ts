/** The CLI trusts an IdP over plain http only on this machine, by the same loopback rule as the daemon. */
import { describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src/client/api.js';
import { ssoLogin } from '../../src/client/sso.js';
import { JitError } from '../../src/errors.js';

/** A server whose /v1/auth/methods names this issuer (what a rogue or misconfigured server could send). */
const serverOffering = (issuer: string) =>
  ({ server: 'http://127.0.0.1:7422', authMethods: async () => ({ sshKey: true, oidc: { issuer, clientId: 'jit-ssh', scopes: ['openid'] } }) }) as unknown as ApiClient;

describe('SSO issuer transport', () => {
  for (const issuer of ['http://127.attacker.example', 'http://127.0.0.1.nip.io', 'http://localhost.attacker.example', 'http://idp.example.com']) {
    it(`fail/plain http to ${issuer} is refused before any request to it`, async () => {
      const e = await ssoLogin(serverOffering(issuer), 'device', { note: () => undefined }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(JitError);
      expect((e as JitError).code).toBe('invalid_config');
      expect((e as JitError).message).toMatch(/insecure identity provider/);
    });
  }
});
