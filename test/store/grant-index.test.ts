import { describe, expect, it } from 'vitest';
import { compactGrant, expandGrant, keyIdFor } from '../../src/store/grant-index.js';
import type { IssuedRequest } from '../../src/store/types.js';

function issued(id: string, over: Partial<IssuedRequest> = {}, keyId?: string): IssuedRequest {
  const base = { id, user: 'alice', task: 'check-logs', ticket: over.ticket };
  return {
    id, user: 'alice', target: 'prod-db', task: 'check-logs', account: 'readonly', rule: 'auto', status: 'issued',
    createdAt: 1_900_000_000_000, expiresAt: 1_900_000_000_000, approvals: [], publicKey: '', keyFingerprint: `SHA256:${id}`,
    draft: { account: 'readonly', principals: ['readonly@prod-db', `x-${id.slice(-1)}`], ttlSeconds: 900, criticalOptions: {}, extensions: {} },
    cert: { serial: '7', keyId: keyId ?? keyIdFor(base), validAfter: 1_900_000_000, validBefore: 1_900_000_900, caFingerprint: 'SHA256:ca' },
    ...over,
  } as IssuedRequest;
}

describe('grant index (compact form of live grants)', () => {
  it('ok/a grant comes back from its compact form with the same key id, principals and window', () => {
    for (const r of [issued('req_a'), issued('req_b', { ticket: 'OPS-1' }), issued('req_c', {}, 'an:older:key-id:format')]) {
      const back = expandGrant(compactGrant(r)!);
      expect(back.cert).toEqual({ serial: '7', keyId: r.cert.keyId, validAfter: 1_900_000_000, validBefore: 1_900_000_900, caFingerprint: 'SHA256:ca' });
      expect(back.draft.principals).toEqual(r.draft.principals);
      expect([back.user, back.target, back.task, back.ticket]).toEqual([r.user, r.target, r.task, r.ticket]);
    }
  });

  it('ok/the key id the issuer writes is not stored per grant; one that differs is', () => {
    expect(compactGrant(issued('req_d'))!.keyId).toBeUndefined();
    expect(compactGrant(issued('req_e', {}, 'custom'))!.keyId).toBe('custom');
  });

  it('ok/equal principal lists are one shared (frozen) array; a caller changing its copy changes no grant', () => {
    const g1 = compactGrant(issued('req_1'))!;
    const g2 = compactGrant(issued('req_1', { id: 'req_z1' }))!;
    expect(g1.principals).toBe(g2.principals);
    expect(Object.isFrozen(g1.principals)).toBe(true);
    const copy = expandGrant(g1);
    copy.draft.principals.push('root');
    expect(g2.principals).toEqual(['readonly@prod-db', 'x-1']);
  });
});
