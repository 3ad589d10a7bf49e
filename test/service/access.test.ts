/** Who may see, decide and revoke which request (service/access.ts), as one table. */
import { describe, expect, it } from 'vitest';
import { isJitError } from '../../src/errors.js';
import type { Identity } from '../../src/policy/decide.js';
import { assertAdmin, assertAuditor, assertMayDecide, maySee, mayRevoke } from '../../src/service/access.js';
import type { PendingRequest } from '../../src/store/types.js';

const deps = { config: { adminGroups: ['admins'], auditorGroups: ['auditors'] } };
const rec: PendingRequest = {
  id: 'req_1', user: 'dave', target: 'prod-db', task: 'incident', status: 'pending', createdAt: 0, expiresAt: 1,
  draft: { account: 'dba', principals: ['dba'], ttlSeconds: 60, criticalOptions: {}, extensions: {} },
  approval: { approvers: ['sre-leads'], count: 1 }, approvals: [], publicKey: '',
};
const who = (user: string, ...groups: string[]): Identity => ({ user, groups, via: 'token' });

const code = (f: () => void): string | undefined => {
  try {
    f();
    return undefined;
  } catch (e) {
    return isJitError(e) ? e.code : 'other';
  }
};

describe('access rules', () => {
  const rows: Array<[string, Identity, { see: boolean; revoke: boolean; decide?: string; admin?: string; audit?: string }]> = [
    ['requester', who('dave', 'sre-leads'), { see: true, revoke: true, decide: 'forbidden', admin: 'forbidden', audit: 'forbidden' }],
    ['approver', who('bob', 'sre-leads'), { see: true, revoke: true, admin: 'forbidden', audit: 'forbidden' }],
    ['admin', who('erin', 'admins'), { see: true, revoke: true, decide: 'forbidden', audit: 'forbidden' }],
    ['auditor', who('ann', 'auditors'), { see: true, revoke: false, decide: 'forbidden', admin: 'forbidden' }],
    ['stranger', who('mallory', 'devs'), { see: false, revoke: false, decide: 'forbidden', admin: 'forbidden', audit: 'forbidden' }],
  ];
  for (const [name, identity, want] of rows) {
    it(`${want.see ? 'ok' : 'fail'}/${name}: see ${want.see}, revoke ${want.revoke}, decide ${want.decide ?? 'yes'}, admin ${want.admin ?? 'yes'}, audit ${want.audit ?? 'yes'}`, () => {
      expect(maySee(deps, identity, rec)).toBe(want.see);
      expect(mayRevoke(deps, identity, rec)).toBe(want.revoke);
      expect(code(() => assertMayDecide(identity, rec))).toBe(want.decide);
      expect(code(() => assertAdmin(deps, identity, 'this'))).toBe(want.admin);
      expect(code(() => assertAuditor(deps, identity))).toBe(want.audit);
    });
  }
});
