import { describe, expect, it } from 'vitest';
import { JitError } from '../../src/errors.js';
import { decide, localTime, renderPrincipals, type AccessRequest, type DecideContext, type Decision, type Identity } from '../../src/policy/decide.js';
import { validatePolicy } from '../../src/policy/schema.js';
import { basePolicy, policyWith } from './fixtures.js';

/** Wednesday 2025-03-05 10:00 UTC (05:00 in New York, EST). */
const NOW = new Date('2025-03-05T10:00:00Z');
const alice: Identity = { user: 'alice', groups: ['sre', 'oncall'], via: 'ssh-key' };
const carol: Identity = { user: 'carol', groups: [], via: 'ssh-key' };
const ctx: DecideContext = { activeGrants: 0, config: { maxTtl: 8 * 3600, backdate: 60 } };

interface Case {
  edit?: (p: Record<string, any>) => void;
  request: AccessRequest;
  identity?: Identity;
  ctx?: Partial<DecideContext>;
  now?: Date;
}

function run(c: Case): Decision {
  const policy = validatePolicy(c.edit ? policyWith(c.edit) : basePolicy());
  return decide(c.request, c.identity ?? alice, policy, c.now ?? NOW, { ...ctx, ...c.ctx });
}

const src = '192.0.2.10';

describe('decide: outcomes', () => {
  const cases: Array<[string, Case, Partial<Decision> & { certDraft?: object }]> = [
    [
      'ok/auto with source binding and defaults',
      { request: { target: 'prod-db', task: 'check-logs', sourceAddress: src } },
      {
        decision: 'auto',
        rule: 'oncall-auto',
        reasons: [],
        certDraft: {
          user: 'alice',
          target: 'prod-db',
          task: 'check-logs',
          account: 'readonly',
          principals: ['readonly@prod-db'],
          ttlSeconds: 900,
          backdateSeconds: 60,
          criticalOptions: { 'source-address': '192.0.2.10/32' },
          extensions: { 'permit-pty': '' },
        },
      },
    ],
    [
      'ok/force-command, no extensions, default ttl clamped to the task maximum',
      { request: { target: 'prod-web', task: 'restart-service', sourceAddress: src } },
      {
        decision: 'auto',
        certDraft: expect.objectContaining({
          account: 'deploy',
          principals: ['deploy@prod-web'],
          ttlSeconds: 600,
          criticalOptions: { 'force-command': 'sudo systemctl restart app', 'source-address': '192.0.2.10/32' },
          extensions: {},
        }),
      },
    ],
    [
      'ok/approval with ticket; first shared account; task extensions',
      { request: { target: 'prod-db', task: 'incident', ticket: 'INC-42', ttl: '30m' } },
      {
        decision: 'approval',
        rule: 'incident-with-approval',
        approval: { approvers: ['sre-leads'], count: 1 },
        reasons: [{ step: 'approval', message: 'needs 1 approval from sre-leads' }],
        certDraft: expect.objectContaining({
          account: 'postgres',
          ticket: 'INC-42',
          principals: ['postgres@prod-db'],
          ttlSeconds: 1800,
          criticalOptions: {},
          extensions: { 'permit-pty': '', 'permit-port-forwarding': '' },
        }),
      },
    ],
    [
      'ok/tasks ["*"] matches any task',
      { request: { target: 'staging-web', task: 'restart-service' } },
      { decision: 'auto', rule: 'staging-auto' },
    ],
    [
      'ok/explicit account',
      { request: { target: 'prod-db', task: 'incident', ticket: 'INC-1', account: 'deploy' } },
      { decision: 'approval', certDraft: expect.objectContaining({ account: 'deploy', principals: ['deploy@prod-db'] }) },
    ],
    [
      'ok/explicit ttl under the maximum, as seconds',
      { request: { target: 'prod-db', task: 'check-logs', ttl: 1200, sourceAddress: src } },
      { decision: 'auto', certDraft: expect.objectContaining({ ttlSeconds: 1200 }) },
    ],
    [
      'ok/policy backdate absent → server backdate',
      { edit: (p) => delete p.defaults.backdate, request: { target: 'staging-web', task: 'check-logs' }, ctx: { config: { maxTtl: 3600, backdate: 30 } } },
      { decision: 'auto', certDraft: expect.objectContaining({ backdateSeconds: 30 }) },
    ],
    [
      'ok/server defaultTtl replaces policy defaults.ttl',
      { request: { target: 'staging-web', task: 'check-logs' }, ctx: { config: { maxTtl: 3600, backdate: 60, defaultTtl: 300 } } },
      { decision: 'auto', certDraft: expect.objectContaining({ ttlSeconds: 300 }) },
    ],
    [
      'ok/custom principal format with user',
      { edit: (p) => (p.targets['staging-web'].principalFormat = '{user}+{account}@{target}'), request: { target: 'staging-web', task: 'check-logs' } },
      { decision: 'auto', certDraft: expect.objectContaining({ principals: ['alice+readonly@staging-web'] }) },
    ],
    [
      'ok/webhook is passed on',
      { edit: (p) => (p.rules[2].webhook = 'https://hooks.example.com/x'), request: { target: 'staging-web', task: 'check-logs' } },
      { decision: 'auto', webhook: 'https://hooks.example.com/x' },
    ],
    [
      'ok/first matching rule wins',
      {
        edit: (p) => p.rules.unshift({ name: 'sre-staging-approval', groups: ['sre'], targets: ['staging-*'], tasks: ['check-logs'], approval: { approvers: ['sre-leads'], count: 1 } }),
        request: { target: 'staging-web', task: 'check-logs' },
      },
      { decision: 'approval', rule: 'sre-staging-approval' },
    ],
    [
      'ok/rule listing the user by name',
      { edit: (p) => p.rules.unshift({ name: 'carol-only', users: ['carol'], targets: ['staging-web'], tasks: ['check-logs'], approval: 'auto' }), request: { target: 'staging-web', task: 'check-logs' }, identity: carol },
      { decision: 'auto', rule: 'carol-only' },
    ],
    [
      'fail/no rule matches',
      { request: { target: 'prod-db', task: 'check-logs' }, identity: carol },
      { decision: 'deny', reasons: [{ step: 'ruleMatches', message: 'no rule matches' }] },
    ],
    [
      'fail/empty groups list allows nothing',
      { edit: (p) => (p.rules[2].groups = []), request: { target: 'staging-web', task: 'check-logs' } },
      { decision: 'deny', reasons: [{ step: 'ruleMatches', message: 'no rule matches' }] },
    ],
    [
      'fail/rule approval deny',
      { edit: (p) => (p.rules[2].approval = 'deny'), request: { target: 'staging-web', task: 'check-logs' } },
      { decision: 'deny', rule: 'staging-auto', reasons: [{ step: 'approval', message: 'rule staging-auto denies this request' }] },
    ],
    [
      'fail/ttl over the task maximum, naming it',
      { request: { target: 'prod-db', task: 'incident', ticket: 'INC-1', ttl: '2h' } },
      { decision: 'deny', rule: 'incident-with-approval', reasons: [{ step: 'resolveTtl', message: 'ttl 2h exceeds the maximum 1h for task incident' }] },
    ],
    [
      'fail/ttl over the rule maximum',
      { edit: (p) => (p.rules[2].maxTtl = '5m'), request: { target: 'staging-web', task: 'check-logs', ttl: '10m' } },
      { decision: 'deny', reasons: [{ step: 'resolveTtl', message: 'ttl 10m exceeds the maximum 5m for rule staging-auto' }] },
    ],
    [
      'fail/ttl over the server maximum',
      { request: { target: 'staging-web', task: 'check-logs', ttl: '20m' }, ctx: { config: { maxTtl: 600, backdate: 60 } } },
      { decision: 'deny', reasons: [{ step: 'resolveTtl', message: 'ttl 20m exceeds the maximum 10m of the server' }] },
    ],
    [
      'fail/ticket required',
      { request: { target: 'prod-db', task: 'incident' } },
      { decision: 'deny', reasons: [{ step: 'ticketValid', message: 'task incident needs a ticket matching ^INC-[0-9]+$' }] },
    ],
    [
      'fail/ticket does not match',
      { request: { target: 'prod-db', task: 'incident', ticket: 'JIRA-1' } },
      { decision: 'deny', reasons: [{ step: 'ticketValid', message: 'ticket JIRA-1 does not match: task incident needs a ticket matching ^INC-[0-9]+$' }] },
    ],
    [
      'fail/reason required',
      { edit: (p) => (p.tasks.incident.requireReason = true), request: { target: 'prod-db', task: 'incident', ticket: 'INC-1', reason: '  ' } },
      { decision: 'deny', reasons: [{ step: 'reasonGiven', message: 'task incident needs a reason' }] },
    ],
    [
      'fail/account not allowed for the task',
      { request: { target: 'prod-db', task: 'check-logs', account: 'postgres' } },
      { decision: 'deny', reasons: [{ step: 'accountAllowed', message: 'account postgres is not allowed for task check-logs on prod-db (allowed: readonly)' }] },
    ],
    [
      'fail/task has no account on the target',
      { edit: (p) => (p.targets['staging-web'].accounts = ['deploy']), request: { target: 'staging-web', task: 'check-logs' } },
      { decision: 'deny', reasons: [{ step: 'accountAllowed', message: 'task check-logs has no account on target staging-web' }] },
    ],
    ['fail/unknown target is a denial', { request: { target: 'prod-dbx', task: 'check-logs' } }, { decision: 'deny', reasons: [{ step: 'targetExists', message: 'unknown target prod-dbx' }] }],
    ['fail/unknown task is a denial', { request: { target: 'prod-db', task: 'nap' } }, { decision: 'deny', reasons: [{ step: 'taskExists', message: 'unknown task nap' }] }],
    ['fail/Object.prototype name as target', { request: { target: 'constructor', task: 'check-logs' } }, { decision: 'deny', reasons: [{ step: 'targetExists', message: 'unknown target constructor' }] }],
    [
      'fail/disabled user',
      { request: { target: 'prod-db', task: 'check-logs' }, identity: { user: 'dave', groups: ['oncall'], via: 'token' } },
      { decision: 'deny', reasons: [{ step: 'userActive', message: 'user dave is disabled' }] },
    ],
    [
      'fail/user not in policy',
      { request: { target: 'prod-db', task: 'check-logs' }, identity: { user: 'mallory', groups: ['oncall'], via: 'token' } },
      { decision: 'deny', reasons: [{ step: 'userActive', message: 'user mallory is not in the policy' }] },
    ],
  ];
  for (const [name, c, expected] of cases) {
    it(name, () => expect(run(c)).toMatchObject(expected));
  }
});

describe('decide: request syntax throws', () => {
  const cases: Array<[string, AccessRequest, string, RegExp]> = [
    ['fail/ttl with space', { target: 'prod-db', task: 'check-logs', ttl: '15 m' }, 'invalid_ttl', /^ttl: .*spaces/],
    ['fail/ttl unit', { target: 'prod-db', task: 'check-logs', ttl: '15x' }, 'invalid_ttl', /^ttl: /],
    ['fail/ttl zero', { target: 'prod-db', task: 'check-logs', ttl: 0 }, 'invalid_ttl', /greater than 0/],
    ['fail/ttl non-finite', { target: 'prod-db', task: 'check-logs', ttl: '1e309' }, 'invalid_ttl', /^ttl: /],
    ['fail/ticket with colon', { target: 'prod-db', task: 'incident', ticket: 'INC:1' }, 'invalid_field', /^ticket: /],
    ['fail/ticket with space', { target: 'prod-db', task: 'incident', ticket: 'INC 1' }, 'invalid_field', /^ticket: /],
    ['fail/ticket too long', { target: 'prod-db', task: 'incident', ticket: 'I'.repeat(65) }, 'invalid_field', /^ticket: /],
    ['fail/target with comma', { target: 'prod-db,root', task: 'check-logs' }, 'invalid_field', /^target: /],
    ['fail/account with space', { target: 'prod-db', task: 'check-logs', account: 'root x' }, 'invalid_field', /^account: /],
    ['fail/task not a string', { target: 'prod-db', task: 5 as unknown as string }, 'invalid_field', /^task: /],
    ['fail/reason with newline', { target: 'prod-db', task: 'check-logs', reason: 'a\nb' }, 'invalid_field', /^reason: /],
    ['fail/source address garbage', { target: 'prod-db', task: 'check-logs', sourceAddress: 'somewhere' }, 'invalid_field', /^sourceAddress: /],
  ];
  for (const [name, request, code, message] of cases) {
    it(name, () => {
      let err: unknown;
      try {
        run({ request });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(JitError);
      expect((err as JitError).code).toBe(code);
      expect((err as JitError).message).toMatch(message);
    });
  }
});

describe('decide: schedule', () => {
  const nyOfficeHours = (p: Record<string, any>, outside: object = {}) =>
    (p.rules[2].schedule = { timezone: 'America/New_York', days: ['mon', 'tue', 'wed', 'thu', 'fri'], hours: '09:00-17:00', ...outside });
  const req: AccessRequest = { target: 'staging-web', task: 'check-logs' };
  const cases: Array<[string, Date, (p: Record<string, any>) => void, Partial<Decision>]> = [
    ['ok/inside: Wed 09:30 EST', new Date('2025-03-05T14:30:00Z'), (p) => nyOfficeHours(p), { decision: 'auto' }],
    ['ok/inside after DST change: Mon 09:30 EDT', new Date('2025-03-10T13:30:00Z'), (p) => nyOfficeHours(p), { decision: 'auto' }],
    [
      'fail/outside: Wed 08:30 EST is 13:30 UTC',
      new Date('2025-03-05T13:30:00Z'),
      (p) => nyOfficeHours(p),
      { decision: 'deny', reasons: [{ step: 'scheduleAllows', message: 'outside the schedule of rule staging-auto (mon,tue,wed,thu,fri 09:00-17:00 America/New_York)' }] },
    ],
    ['fail/end is exclusive: 17:00', new Date('2025-03-05T22:00:00Z'), (p) => nyOfficeHours(p), { decision: 'deny' }],
    ['fail/outside by day: Saturday noon', new Date('2025-03-08T17:00:00Z'), (p) => nyOfficeHours(p), { decision: 'deny' }],
    [
      'ok/outside with approval fallback',
      new Date('2025-03-08T17:00:00Z'),
      (p) => nyOfficeHours(p, { outside: 'approval', approvers: ['sre-leads'], count: 2 }),
      { decision: 'approval', approval: { approvers: ['sre-leads'], count: 2 }, rule: 'staging-auto' },
    ],
    ['ok/inside with approval fallback stays auto', new Date('2025-03-05T14:30:00Z'), (p) => nyOfficeHours(p, { outside: 'approval', approvers: ['sre-leads'], count: 2 }), { decision: 'auto' }],
  ];
  for (const [name, now, edit, expected] of cases) {
    it(name, () => expect(run({ edit, request: req, now })).toMatchObject(expected));
  }

  it('ok/localTime crosses the date line', () => {
    expect(localTime(new Date('2025-03-05T22:00:00Z'), 'Pacific/Auckland')).toEqual({ day: 'thu', minute: 11 * 60 });
    expect(localTime(new Date('2025-03-05T00:30:00Z'), 'UTC')).toEqual({ day: 'wed', minute: 30 });
  });
});

describe('decide: maxActive, identity cap, source address', () => {
  const staging: AccessRequest = { target: 'staging-web', task: 'check-logs' };
  const cases: Array<[string, Case, Partial<Decision> & { certDraft?: object }]> = [
    ['ok/maxActive not reached', { edit: (p) => (p.rules[2].maxActive = 2), request: staging, ctx: { activeGrants: 1 } }, { decision: 'auto' }],
    [
      'fail/maxActive reached',
      { edit: (p) => (p.rules[2].maxActive = 2), request: staging, ctx: { activeGrants: 2 } },
      { decision: 'deny', reasons: [{ step: 'maxActive', message: 'maxActive 2 reached (2 active)' }] },
    ],
    ['fail/maxActive with unknown count fails closed', { edit: (p) => (p.rules[2].maxActive = 2), request: staging, ctx: { activeGrants: undefined } }, { decision: 'deny', reasons: [expect.objectContaining({ step: 'maxActive' })] }],
    [
      'ok/ttl capped to the identity',
      { edit: (p) => (p.rules[2].capTtlToIdentity = true), request: staging, identity: { ...alice, expiresAt: NOW.getTime() + 300_500 } },
      { decision: 'auto', certDraft: expect.objectContaining({ ttlSeconds: 300 }) },
    ],
    ['ok/identity outlives ttl', { edit: (p) => (p.rules[2].capTtlToIdentity = true), request: staging, identity: { ...alice, expiresAt: NOW.getTime() + 7_200_000 } }, { certDraft: expect.objectContaining({ ttlSeconds: 900 }) }],
    ['ok/without capTtlToIdentity no cap', { request: staging, identity: { ...alice, expiresAt: NOW.getTime() + 60_000 } }, { certDraft: expect.objectContaining({ ttlSeconds: 900 }) }],
    [
      'fail/identity already expired',
      { edit: (p) => (p.rules[2].capTtlToIdentity = true), request: staging, identity: { ...alice, expiresAt: NOW.getTime() - 1 } },
      { decision: 'deny', reasons: [expect.objectContaining({ step: 'capTtlToIdentity' })] },
    ],
    [
      'fail/bindSourceAddress without address',
      { request: { target: 'prod-db', task: 'check-logs' } },
      { decision: 'deny', reasons: [{ step: 'sourceAddress', message: "rule oncall-auto binds the certificate to the requester's address, which is unknown" }] },
    ],
    ['ok/IPv4-mapped IPv6 binds as IPv4', { request: { target: 'prod-db', task: 'check-logs', sourceAddress: '::ffff:192.0.2.10' } }, { certDraft: expect.objectContaining({ criticalOptions: { 'source-address': '192.0.2.10/32' } }) }],
    ['ok/IPv6 binds /128, canonical', { request: { target: 'prod-db', task: 'check-logs', sourceAddress: '2001:DB8:0:0:0:0:0:1' } }, { certDraft: expect.objectContaining({ criticalOptions: { 'source-address': '2001:db8::1/128' } }) }],
    [
      'ok/sourceAddresses only: joined list',
      { edit: (p) => (p.rules[2].sourceAddresses = ['10.0.0.0/8', '2001:db8::/32']), request: staging },
      { certDraft: expect.objectContaining({ criticalOptions: { 'source-address': '10.0.0.0/8,2001:db8::/32' } }) },
    ],
    [
      'ok/both: requester inside the list is bound to itself',
      { edit: (p) => { p.rules[2].sourceAddresses = ['10.0.0.0/8']; p.rules[2].bindSourceAddress = true; }, request: { ...staging, sourceAddress: '10.1.2.3' } },
      { certDraft: expect.objectContaining({ criticalOptions: { 'source-address': '10.1.2.3/32' } }) },
    ],
    [
      'fail/both: requester outside the list',
      { edit: (p) => { p.rules[2].sourceAddresses = ['10.0.0.0/8']; p.rules[2].bindSourceAddress = true; }, request: { ...staging, sourceAddress: '192.0.2.1' } },
      { decision: 'deny', reasons: [{ step: 'sourceAddress', message: 'requester address 192.0.2.1 is not in 10.0.0.0/8' }] },
    ],
  ];
  for (const [name, c, expected] of cases) {
    it(name, () => expect(run(c)).toMatchObject(expected));
  }
});

describe('decide: steps record every check', () => {
  it('ok/auto decision lists each named step, and each rule', () => {
    const d = run({ request: { target: 'prod-db', task: 'check-logs', sourceAddress: src } });
    expect(d.steps.map((s) => s.step)).toEqual([
      'userActive', 'targetExists', 'taskExists', 'accountAllowed', 'ticketValid', 'reasonGiven',
      'ruleMatches', 'ruleMatches', 'ruleMatches',
      'resolveTtl', 'capTtlToIdentity', 'scheduleAllows', 'maxActive', 'sourceAddress', 'principals', 'approval',
    ]);
    expect(d.steps.every((s) => s.step === 'ruleMatches' || s.ok)).toBe(true);
    expect(d.steps.filter((s) => s.step === 'ruleMatches')).toEqual([
      { step: 'ruleMatches', ok: true, why: 'group oncall matches', rule: 'oncall-auto' },
      { step: 'ruleMatches', ok: false, why: 'task check-logs is not in [incident]', rule: 'incident-with-approval' },
      { step: 'ruleMatches', ok: false, why: 'target prod-db matches none of [staging-*]', rule: 'staging-auto' },
    ]);
  });

  it('ok/a later matching rule says who came first', () => {
    const d = run({ edit: (p) => p.rules.push({ name: 'late', groups: ['sre'], targets: ['*'], tasks: ['*'], approval: 'auto' }), request: { target: 'staging-web', task: 'check-logs' } });
    expect(d.steps.find((s) => s.rule === 'late')).toEqual({ step: 'ruleMatches', ok: true, why: 'also matches, but rule staging-auto comes first', rule: 'late' });
  });

  it('ok/no-match explains each rule', () => {
    const d = run({ request: { target: 'prod-db', task: 'check-logs' }, identity: carol });
    expect(d.steps.filter((s) => s.step === 'ruleMatches').map((s) => s.why)).toEqual([
      'groups (no groups) share none of [oncall]',
      'groups (no groups) share none of [dba, sre]',
      'groups (no groups) share none of [sre]',
    ]);
    expect(d.certDraft).toBeUndefined();
  });
});

describe('renderPrincipals', () => {
  it('ok/default format', () => expect(renderPrincipals('{account}@{target}', { account: 'a', target: 't', user: 'u' })).toEqual(['a@t']));
  it('fail/unsafe value never becomes a principal', () => {
    expect(() => renderPrincipals('{user}@{target}', { account: 'a', target: 't', user: 'x,root' })).toThrow(JitError);
    expect(() => renderPrincipals('{account}@{target}', { account: '', target: '', user: 'u' })).not.toThrow();
    expect(() => renderPrincipals('{account}', { account: '', target: 't', user: 'u' })).toThrow(JitError);
  });
});
