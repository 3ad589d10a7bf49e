/** Claims → user and groups, the single-use store, the oidc: config checks, and SSO users in the policy. */
import { describe, expect, it } from 'vitest';
import { mapClaims, MAX_IDP_GROUPS, withPolicyGroups } from '../../src/auth/oidc-identity.js';
import { MemoryUsedTokens } from '../../src/auth/oidc-replay.js';
import { replayKey } from '../../src/auth/oidc.js';
import { checkConfig, issuerProblem } from '../../src/policy/config-schema.js';
import { userActive } from '../../src/policy/decide.js';
import type { Policy } from '../../src/policy/schema.js';

const M = { usernameClaim: 'preferred_username', groupsClaim: 'groups' };

describe('mapClaims', () => {
  const ok: [string, Record<string, unknown>, typeof M & { emailDomains?: string[] }, string, string[]][] = [
    ['preferred_username and groups', { preferred_username: 'alice', groups: ['sre', 'dba', 'sre'] }, M, 'alice', ['dba', 'sre']],
    ['no groups claim → none', { preferred_username: 'alice' }, M, 'alice', []],
    ['verified email fallback', { email: 'bob@corp.example', email_verified: true }, M, 'bob', []],
    ['email fallback in an allowed domain', { email: 'bob@Corp.Example', email_verified: true }, { ...M, emailDomains: ['corp.example'] }, 'bob', []],
    ['usernameClaim email takes the local part', { email: 'carol@x.example', email_verified: true }, { ...M, usernameClaim: 'email' }, 'carol', []],
    ['custom claims', { upn: 'dave', roles: ['dba'] }, { usernameClaim: 'upn', groupsClaim: 'roles' }, 'dave', ['dba']],
  ];
  for (const [name, claims, m, user, groups] of ok) {
    it(`ok/${name}`, () => expect(mapClaims(claims, m)).toEqual({ ok: true, user, groups }));
  }
  const fail: [string, Record<string, unknown>, typeof M & { emailDomains?: string[] }, RegExp][] = [
    ['user breaks the name rule', { preferred_username: 'a b' }, M, /name rule/],
    ['user is not a string', { preferred_username: 7 }, M, /not a string/],
    ['unverified email', { email: 'bob@corp.example', email_verified: 'true' }, M, /not verified/],
    ['email in another domain', { email: 'bob@gmail.com', email_verified: true }, { ...M, emailDomains: ['corp.example'] }, /not in oidc.emailDomains/],
    ['nothing to name the user', { sub: 'x' }, M, /no email/],
    ['groups not a list', { preferred_username: 'a', groups: 'sre' }, M, /not a list/],
    ['group not a name', { preferred_username: 'a', groups: ['/sre'] }, M, /not a group name/],
    ['too many groups', { preferred_username: 'a', groups: Array.from({ length: MAX_IDP_GROUPS + 1 }, (_, i) => `g${i}`) }, M, /more than/],
  ];
  for (const [name, claims, m, why] of fail) {
    it(`fail/${name}`, () => {
      const r = mapClaims(claims, m);
      expect(r.ok).toBe(false);
      expect(r.ok ? '' : r.reason).toMatch(why);
    });
  }
  it('ok/groups: IdP ∪ policy, sorted, no duplicates', () => expect(withPolicyGroups(['b', 'a'], ['a', 'c'])).toEqual(['a', 'b', 'c']));
});

describe('MemoryUsedTokens', () => {
  it('true once, false on replay until the token expires, then forgotten', async () => {
    let now = 1000;
    const used = new MemoryUsedTokens({ now: () => now });
    expect(await used.markUsed('h', 5000)).toBe(true);
    expect(await used.markUsed('h', 5000)).toBe(false);
    now = 6000;
    used.prune();
    expect(used.size).toBe(0);
  });
  it('fail/full: refuses rather than forgetting live entries', async () => {
    const used = new MemoryUsedTokens({ now: () => 0, maxEntries: 2 });
    await used.markUsed('a', 10);
    await used.markUsed('b', 10);
    await expect(used.markUsed('c', 10)).rejects.toMatchObject({ code: 'rate_limited' });
    expect(await used.markUsed('a', 10)).toBe(false);
  });
  it('replayKey ignores the signature encoding', () => {
    expect(replayKey('h.p.sig1')).toBe(replayKey('h.p.sig2'));
    expect(replayKey('h.p.sig1')).not.toBe(replayKey('h.q.sig1'));
  });
});

describe('oidc: config', () => {
  it('ok/defaults', () => {
    const r = checkConfig({ oidc: { issuer: 'https://idp.example.com', clientId: 'jit' } });
    expect(r.ok && r.value.oidc).toMatchObject({
      scopes: ['openid', 'profile', 'email'],
      usernameClaim: 'preferred_username',
      groupsClaim: 'groups',
      maxTokenAge: 600,
      allowedAlgs: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA'],
    });
  });
  const bad: [string, unknown, RegExp][] = [
    ['http issuer off loopback', { issuer: 'http://idp.example.com', clientId: 'x' }, /oidc.issuer: must be https/],
    ['HS256 allowed', { issuer: 'https://idp.example.com', clientId: 'x', allowedAlgs: ['HS256'] }, /oidc.allowedAlgs\[0\]/],
    ['none allowed', { issuer: 'https://idp.example.com', clientId: 'x', allowedAlgs: ['none'] }, /oidc.allowedAlgs\[0\]/],
    ['scopes without openid', { issuer: 'https://idp.example.com', clientId: 'x', scopes: ['profile'] }, /oidc.scopes: must include openid/],
    ['no clientId', { issuer: 'https://idp.example.com' }, /oidc.clientId: required/],
    ['unknown field', { issuer: 'https://idp.example.com', clientId: 'x', audience: 'y' }, /oidc/],
  ];
  for (const [name, oidc, why] of bad) {
    it(`fail/${name}`, () => {
      const r = checkConfig({ oidc });
      expect(r.ok).toBe(false);
      expect(r.ok ? '' : r.problems.join('\n')).toMatch(why);
    });
  }
  it('issuerProblem: loopback http only', () => {
    expect(issuerProblem('http://127.0.0.1:5556/dex')).toBeNull();
    expect(issuerProblem('http://[::1]:8080')).toBeNull();
    expect(issuerProblem('http://localhost:8080')).toBeNull();
    expect(issuerProblem('http://10.0.0.1')).toMatch(/https/);
    expect(issuerProblem('https://idp.example.com/?x=1')).toMatch(/query/);
  });
});

describe('userActive for SSO users', () => {
  const policy = { users: { dave: { groups: [], keys: [], disabled: true } } } as unknown as Policy;
  it('ok/an SSO user needs no users: entry', () => expect(userActive(policy, { user: 'zoe', groups: [], via: 'oidc' }).ok).toBe(true));
  it('fail/an SSH-key user does', () => expect(userActive(policy, { user: 'zoe', groups: [], via: 'ssh-key' }).ok).toBe(false));
  it('fail/disabled stays disabled under SSO', () => expect(userActive(policy, { user: 'dave', groups: [], via: 'oidc' }).ok).toBe(false));
});
