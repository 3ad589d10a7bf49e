import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { JitError } from '../../src/errors.js';
import { checkPolicy, keyLineProblem, parsePolicyYaml, principalFormatProblem, validatePolicy } from '../../src/policy/schema.js';
import { basePolicy, ED25519_KEY, policyWith } from './fixtures.js';

function problemsOf(raw: unknown): string[] {
  const r = checkPolicy(raw, 'policy.yaml');
  return r.ok ? [] : r.problems;
}

describe('validatePolicy', () => {
  it('ok/base policy, with defaults filled in and durations in seconds', () => {
    const p = validatePolicy(basePolicy());
    expect(p.defaults).toEqual({ ttl: 900, maxTtl: 3600, backdate: 60 });
    expect(p.tokens).toEqual([]);
    expect(p.users.bob).toEqual({ groups: ['sre-leads'], keys: [], disabled: false });
    expect(p.targets['prod-db'].principalFormat).toBe('{account}@{target}');
    expect(p.tasks['check-logs']).toEqual({ accounts: ['readonly'], maxTtl: 1800, extensions: ['permit-pty'], requireReason: false });
    expect(p.rules[0]).toMatchObject({ name: 'oncall-auto', bindSourceAddress: true, capTtlToIdentity: false });
    expect(p.rules[1].approval).toEqual({ approvers: ['sre-leads'], count: 1 });
  });

  it('ok/lookups of Object.prototype names find nothing', () => {
    const p = validatePolicy(basePolicy());
    expect(p.users['constructor']).toBeUndefined();
    expect(p.targets['toString']).toBeUndefined();
  });

  const ok: Array<[string, (p: Record<string, any>) => void]> = [
    ['ok/minimal: rules only', (p) => { for (const k of Object.keys(p)) delete p[k]; p.rules = []; }],
    ['ok/schedule with outside approval', (p) => { p.rules[0].schedule = { timezone: 'Europe/Berlin', days: ['mon', 'fri'], hours: '08:00-18:00', outside: 'approval', approvers: ['sre-leads'], count: 1 }; }],
    ['ok/schedule to 24:00', (p) => { p.rules[0].schedule = { timezone: 'UTC', days: ['sun'], hours: '00:00-24:00' }; }],
    ['ok/token', (p) => { p.tokens = [{ name: 'ci', user: 'alice', sha256: 'A'.repeat(64), expires: '2030-01-01' }]; }],
    ['ok/source addresses', (p) => { p.rules[0].sourceAddresses = ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7']; }],
    ['ok/custom principal format', (p) => { p.targets['prod-db'].principalFormat = 'jit:{user}:{account}@{target}'; }],
    ['ok/rule with users only', (p) => { p.rules[0] = { ...p.rules[0], users: ['alice'], groups: undefined }; delete p.rules[0].groups; }],
    ['ok/empty groups list is allowed (matches nobody)', (p) => { p.rules[0].groups = []; }],
    ['ok/upper-case names', (p) => { p.users.Eve = { groups: ['SRE'] }; }],
    ['ok/all rule fields', (p) => { Object.assign(p.rules[2], { maxTtl: '30m', maxActive: 2, webhook: 'https://hooks.example.com/x', capTtlToIdentity: true, description: 'x' }); }],
  ];
  for (const [name, edit] of ok) {
    it(name, () => expect(problemsOf(policyWith(edit))).toEqual([]));
  }

  const fail: Array<[string, (p: Record<string, any>) => void, string[]]> = [
    ['fail/unknown top-level field', (p) => { p.groups = {}; }, ['policy.yaml: groups: unknown field']],
    ['fail/unknown rule field', (p) => { p.rules[1].approvers = ['x']; }, ['policy.yaml: rules[1].approvers: unknown field']],
    ['fail/unknown task field', (p) => { p.tasks.incident.ticket = 'x'; }, ['policy.yaml: tasks.incident.ticket: unknown field']],
    ['fail/rules missing', (p) => { delete p.rules; }, ['policy.yaml: rules: required']],
    ['fail/bad regex', (p) => { p.tasks.incident.requireTicket = '^INC-[0-9+$'; }, [expect.stringMatching(/^policy\.yaml: tasks\.incident\.requireTicket: invalid regular expression: /)]],
    ['fail/bad glob', (p) => { p.rules[0].targets = ['prod-[ab]']; }, ['policy.yaml: rules[0].targets[0]: invalid glob "prod-[ab]": only letters, digits, ".", "_", "-" and "*" are allowed']],
    ['fail/glob matches no target', (p) => { p.rules[0].targets = ['qa-*']; }, ['policy.yaml: rules[0].targets[0]: "qa-*" matches no target']],
    ['fail/empty targets', (p) => { p.rules[0].targets = []; }, ['policy.yaml: rules[0].targets: must not be empty']],
    ['fail/empty tasks', (p) => { p.rules[0].tasks = []; }, ['policy.yaml: rules[0].tasks: must not be empty']],
    ['fail/unknown task in rule', (p) => { p.rules[0].tasks = ['check-log']; }, ['policy.yaml: rules[0].tasks[0]: unknown task "check-log"']],
    ['fail/unknown user in rule', (p) => { p.rules[0].users = ['mallory']; }, ['policy.yaml: rules[0].users[0]: unknown user "mallory"']],
    ['fail/duplicate rule names', (p) => { p.rules[2].name = 'oncall-auto'; }, ['policy.yaml: rules[2].name: duplicate rule name "oncall-auto"']],
    ['fail/no users or groups', (p) => { delete p.rules[0].groups; }, ['policy.yaml: rules[0]: must list users or groups (an empty list matches nobody)']],
    ['fail/approval count 0', (p) => { p.rules[1].approval.count = 0; }, ['policy.yaml: rules[1].approval.count: must be ≥ 1']],
    ['fail/approval no approvers', (p) => { p.rules[1].approval.approvers = []; }, ['policy.yaml: rules[1].approval.approvers: must not be empty']],
    ['fail/approval word', (p) => { p.rules[1].approval = 'maybe'; }, ['policy.yaml: rules[1].approval: must be auto, deny or {approvers: [group, …], count: N}']],
    ['fail/injection in target name', (p) => { p.targets['prod-db,root'] = p.targets['prod-db']; }, [expect.stringMatching(/^policy\.yaml: targets\["prod-db,root"\]: invalid name: must be 1–63/)]],
    ['fail/injection in account', (p) => { p.targets['prod-db'].accounts = ['postgres root']; }, [expect.stringMatching(/^policy\.yaml: targets\.prod-db\.accounts\[0\]: must be 1–63/)]],
    ['fail/injection in user name', (p) => { p.users['eve\nroot'] = { groups: [] }; }, [expect.stringMatching(/^policy\.yaml: users\["eve\\nroot"\]: invalid name/)]],
    ['fail/task name with space', (p) => { p.tasks['check logs'] = p.tasks['check-logs']; }, [expect.stringMatching(/^policy\.yaml: tasks\["check logs"\]: invalid name/)]],
    ['fail/principal format comma', (p) => { p.targets['prod-db'].principalFormat = '{account}@{target},root'; }, [expect.stringContaining('targets.prod-db.principalFormat: may contain only')]],
    ['fail/principal format unknown placeholder', (p) => { p.targets['prod-db'].principalFormat = '{account}@{host}'; }, ['policy.yaml: targets.prod-db.principalFormat: unknown placeholder {host} (use {account}, {target}, {user})']],
    ['fail/principal format without target', (p) => { p.targets['prod-db'].principalFormat = '{account}'; }, ['policy.yaml: targets.prod-db.principalFormat: must contain {account} and {target}']],
    ['fail/target without hosts', (p) => { p.targets['prod-db'].hosts = []; }, ['policy.yaml: targets.prod-db.hosts: must not be empty']],
    ['fail/task without accounts', (p) => { p.tasks.incident.accounts = []; }, ['policy.yaml: tasks.incident.accounts: must not be empty']],
    ['fail/task account on no target', (p) => { p.tasks.incident.accounts = ['postgress']; }, ['policy.yaml: tasks.incident.accounts[0]: "postgress" is not an account of any target', 'policy.yaml: rules[1]: grants nothing: no target it matches shares an account with any of its tasks']],
    ['fail/task defaultTtl over maxTtl', (p) => { p.tasks.incident.defaultTtl = '2h'; }, ['policy.yaml: tasks.incident.defaultTtl: must not exceed maxTtl']],
    ['fail/task maxTtl missing', (p) => { delete p.tasks.incident.maxTtl; }, ['policy.yaml: tasks.incident.maxTtl: required']],
    ['fail/task maxTtl with space', (p) => { p.tasks.incident.maxTtl = '1 h'; }, ['policy.yaml: tasks.incident.maxTtl: "1 h" must not contain spaces']],
    // the certificate encoder writes only extensions it knows, so the policy may name no others
    ['fail/custom extension', (p) => { p.tasks.incident.extensions = ['permit-pty', 'login@example.com']; }, [expect.stringContaining('tasks.incident.extensions[1]: unknown extension "login@example.com"')]],
    ['fail/unknown extension', (p) => { p.tasks.incident.extensions = ['permit-everything']; }, [expect.stringContaining('tasks.incident.extensions[0]: unknown extension "permit-everything"')]],
    ['fail/force command newline', (p) => { p.tasks['restart-service'].forceCommand = 'a\nb'; }, ['policy.yaml: tasks.restart-service.forceCommand: must not contain control or bidirectional-formatting characters (found U+000A at position 1)']],
    ['fail/force command with bidi override', (p) => { p.tasks['restart-service'].forceCommand = 'systemctl status \u202e; rm -rf /'; }, [expect.stringContaining('tasks.restart-service.forceCommand: must not contain control or bidirectional-formatting characters (found U+202E')]],
    ['fail/target description with 8-bit CSI', (p) => { p.targets['prod-db'].description = 'db \u009b2J'; }, [expect.stringContaining('targets.prod-db.description: must not contain control or bidirectional-formatting characters (found U+009B')]],
    ['fail/bad key type', (p) => { p.users.alice.keys = ['ssh-dss AAAAB3NzaC1kc3M= old']; }, ['policy.yaml: users.alice.keys[0]: key type ssh-dss is not accepted (use ssh-ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521, sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com, ssh-rsa)']],
    ['fail/key type mismatch', (p) => { p.users.alice.keys = [ED25519_KEY.replace('ssh-ed25519', 'ssh-rsa')]; }, ['policy.yaml: users.alice.keys[0]: key blob does not start with its type ssh-rsa']],
    ['fail/key not base64', (p) => { p.users.alice.keys = ['ssh-ed25519 AAAA$$$ x']; }, [expect.stringContaining('users.alice.keys[0]: must be an authorized_keys line')]],
    ['fail/schedule bad time zone', (p) => { p.rules[0].schedule = { timezone: 'Mars/Olympus', days: ['mon'], hours: '08:00-18:00' }; }, ['policy.yaml: rules[0].schedule.timezone: unknown time zone "Mars/Olympus" (use an IANA name like Europe/Berlin)']],
    ['fail/schedule bad day', (p) => { p.rules[0].schedule = { timezone: 'UTC', days: ['monday'], hours: '08:00-18:00' }; }, ['policy.yaml: rules[0].schedule.days[0]: must be one of mon, tue, wed, thu, fri, sat, sun']],
    ['fail/schedule bad hours', (p) => { p.rules[0].schedule = { timezone: 'UTC', days: ['mon'], hours: '8-18' }; }, ['policy.yaml: rules[0].schedule.hours: must be HH:MM-HH:MM, e.g. 08:00-18:00']],
    ['fail/schedule overnight', (p) => { p.rules[0].schedule = { timezone: 'UTC', days: ['mon'], hours: '22:00-06:00' }; }, ['policy.yaml: rules[0].schedule.hours: start must be before end (split overnight windows into two rules)']],
    ['fail/schedule approval without approvers', (p) => { p.rules[0].schedule = { timezone: 'UTC', days: ['mon'], hours: '08:00-18:00', outside: 'approval' }; }, ['policy.yaml: rules[0].schedule: outside: approval needs approvers and count']],
    ['fail/schedule deny with approvers', (p) => { p.rules[0].schedule = { timezone: 'UTC', days: ['mon'], hours: '08:00-18:00', approvers: ['x'], count: 1 }; }, ['policy.yaml: rules[0].schedule: approvers and count only apply with outside: approval']],
    ['fail/source address host bits', (p) => { p.rules[0].sourceAddresses = ['10.1.2.3/8']; }, ['policy.yaml: rules[0].sourceAddresses[0]: "10.1.2.3/8" has host bits set (did you mean 10.0.0.0/8?)']],
    ['fail/source address garbage', (p) => { p.rules[0].sourceAddresses = ['10.0.0.0/8,0.0.0.0/0']; }, ['policy.yaml: rules[0].sourceAddresses[0]: "10.0.0.0/8,0.0.0.0/0" is not an IP address or CIDR']],
    ['fail/maxActive 0', (p) => { p.rules[0].maxActive = 0; }, ['policy.yaml: rules[0].maxActive: must be ≥ 1']],
    ['fail/webhook url', (p) => { p.rules[0].webhook = 'javascript:alert(1)'; }, ['policy.yaml: rules[0].webhook: must be an http:// or https:// URL']],
    ['fail/token user unknown', (p) => { p.tokens = [{ name: 'ci', user: 'zed', sha256: 'a'.repeat(64) }]; }, ['policy.yaml: tokens[0].user: unknown user "zed"']],
    ['fail/token hash', (p) => { p.tokens = [{ name: 'ci', user: 'alice', sha256: 'secret' }]; }, ['policy.yaml: tokens[0].sha256: must be 64 hex digits: the SHA-256 of the token']],
    ['fail/token expiry', (p) => { p.tokens = [{ name: 'ci', user: 'alice', sha256: 'a'.repeat(64), expires: 'soon' }]; }, [expect.stringContaining('tokens[0].expires: must be a date')]],
    ['fail/duplicate token', (p) => { p.tokens = [{ name: 'ci', user: 'alice', sha256: 'a'.repeat(64) }, { name: 'ci', user: 'bob', sha256: 'A'.repeat(64) }]; }, ['policy.yaml: tokens[1].name: duplicate token name "ci"', 'policy.yaml: tokens[1].sha256: same hash as an earlier token']],
    ['fail/defaults ttl over maxTtl', (p) => { p.defaults.ttl = '2h'; }, ['policy.yaml: defaults.ttl: must not exceed defaults.maxTtl']],
    ['fail/rule grants nothing', (p) => { p.rules[0].targets = ['staging-web']; p.rules[0].tasks = ['check-logs']; p.targets['staging-web'].accounts = ['deploy']; }, ['policy.yaml: rules[0]: grants nothing: no target it matches shares an account with any of its tasks']],
  ];
  for (const [name, edit, expected] of fail) {
    it(name, () => expect(problemsOf(policyWith(edit))).toEqual(expected));
  }

  it('fail/every structural problem listed at once, thrown as invalid_config', () => {
    const raw = policyWith((p) => {
      p.rules[1].approval.count = 0;
      p.rules[0].bogus = true;
      p.tasks.incident.requireTicket = '(';
      p.defaults.ttl = '15 m';
    });
    let err: unknown;
    try {
      validatePolicy(raw, 'config/policy.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(JitError);
    expect((err as JitError).code).toBe('invalid_config');
    const details = (err as JitError).details as string[];
    expect(details).toHaveLength(4);
    expect(details).toEqual(
      expect.arrayContaining([
        'config/policy.yaml: rules[1].approval.count: must be ≥ 1',
        'config/policy.yaml: rules[0].bogus: unknown field',
        'config/policy.yaml: defaults.ttl: "15 m" must not contain spaces',
      ]),
    );
  });

  it('fail/not a mapping', () => {
    expect(problemsOf('rules: []')).toEqual(['policy.yaml: must be a mapping']);
    expect(problemsOf(null)).toEqual(['policy.yaml: must be a mapping']);
  });
});

describe('principalFormatProblem', () => {
  const cases: Array<[string, boolean]> = [
    ['{account}@{target}', true],
    ['{target}-{account}', true],
    ['{user}+{account}@{target}', true],
    ['{account}@{target} ', false],
    ['{account}@{target}{', false],
    ['{account}@{{target}}', false],
    ['{ account}@{target}', false],
    ['{account}', false],
  ];
  for (const [format, good] of cases) {
    it(`${good ? 'ok' : 'fail'}/${JSON.stringify(format)}`, () => expect(principalFormatProblem(format) === null).toBe(good));
  }
});

describe('keyLineProblem', () => {
  it('ok/real ed25519 line', () => expect(keyLineProblem(ED25519_KEY)).toBeNull());
  it('ok/no comment', () => expect(keyLineProblem(ED25519_KEY.split(' ').slice(0, 2).join(' '))).toBeNull());
  it('fail/options prefix', () => expect(keyLineProblem(`from="*" ${ED25519_KEY}`)).not.toBeNull());
  it('fail/truncated blob', () => expect(keyLineProblem('ssh-ed25519 AAAAC3NzaC1lZDI1')).not.toBeNull());
});

describe('policy YAML', () => {
  it('ok/shipped config/policy.yaml parses', () => {
    const text = readFileSync(new URL('../../config/policy.yaml', import.meta.url), 'utf8');
    const p = parsePolicyYaml(text, 'config/policy.yaml');
    expect(Object.keys(p.users)).toEqual(['alice', 'bob', 'erin']);
    expect(Object.keys(p.targets)).toEqual(['prod-db', 'prod-web', 'staging-web']);
    expect(p.rules.map((r) => r.name)).toEqual(['oncall-auto', 'incident-with-approval', 'staging-auto']);
  });

  it('fail/duplicate key with line and column', () => {
    const text = 'rules: []\ntargets:\n  a: {hosts: [h], accounts: [x]}\n  a: {hosts: [h], accounts: [y]}\n';
    expect(() => parsePolicyYaml(text, 'policy.yaml')).toThrow(/^policy\.yaml:4:3: Map keys must be unique/);
  });

  it('fail/syntax error with line and column', () => {
    let err: unknown;
    try {
      parsePolicyYaml('rules:\n  - name: a\n    targets: [x\n  - name: b\n', 'policy.yaml');
    } catch (e) {
      err = e;
    }
    expect((err as JitError).code).toBe('invalid_config');
    expect((err as JitError).message).toMatch(/policy\.yaml:\d+:\d+: /);
  });

  it('fail/validation problems after YAML parse', () => {
    expect(() => parsePolicyYaml('rules: []\nextra: 1\n', 'p.yaml')).toThrow('p.yaml: extra: unknown field');
  });
});
