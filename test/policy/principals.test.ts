/**
 * Issue 11.8: a policy in which two different (target, account) pairs can render the same
 * principal is refused, naming both pairs and the principal, for fixed formats, per-target
 * formats and {user}. A brute-force comparison checks the reasoning about {user}.
 */
import { describe, expect, it } from 'vitest';
import { principalCollisions } from '../../src/policy/principals.js';
import { checkPolicy, type Target } from '../../src/policy/schema.js';
import { renderPrincipals } from '../../src/policy/decide.js';
import { policyWith } from './fixtures.js';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { makeEnv, REPO } from '../helpers/daemon.js';
import { ensureBuilt } from '../cli/run-cli.js';
import { describeWithTools } from '../helpers/tools.js';

const targetsOf = (spec: Record<string, [string, string[]]>): Record<string, Target> =>
  Object.fromEntries(Object.entries(spec).map(([name, [principalFormat, accounts]]) => [name, { hosts: ['h'], accounts, principalFormat }]));

/** The policy fixture with its targets replaced (tasks and rules adjusted to stay valid). */
function policyWithTargets(spec: Record<string, [string, string[]]>) {
  return policyWith((p) => {
    p.targets = Object.fromEntries(Object.entries(spec).map(([n, [principalFormat, accounts]]) => [n, { hosts: ['h1'], accounts, principalFormat }]));
    const accounts = [...new Set(Object.values(spec).flatMap(([, a]) => a))];
    p.tasks = { any: { accounts, maxTtl: '10m' } };
    p.rules = [{ name: 'all', groups: ['sre'], targets: ['*'], tasks: ['any'], approval: 'auto' }];
  });
}

describe('policy validation refuses principal collisions', () => {
  it('fail/attack from the issue: {target}-{account}, web/prod-root and web-prod/root both render web-prod-root', () => {
    const r = checkPolicy(policyWithTargets({ web: ['{target}-{account}', ['prod-root', 'deploy']], 'web-prod': ['{target}-{account}', ['root']] }));
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([
      'policy.yaml: targets.web-prod.principalFormat: target web account prod-root ("{target}-{account}") and target web-prod account root ("{target}-{account}") both render the principal "web-prod-root" so a certificate for one would log in to the other; separate the parts with a character names cannot contain (@ + = :), as in "{account}@{target}"',
    ]);
  });

  it('fail/across different per-target formats: db/root ({account}@{target}) and root/db ({target}@{account})', () => {
    const r = checkPolicy(policyWithTargets({ db: ['{account}@{target}', ['root']], root: ['{target}@{account}', ['db']] }));
    expect(r.problems).toEqual([expect.stringContaining('target db account root ("{account}@{target}") and target root account db ("{target}@{account}") both render the principal "root@db"')]);
  });

  it('fail/{user} with a separator names may contain: accounts root and x-root on one target', () => {
    const r = checkPolicy(policyWithTargets({ web: ['{user}-{account}@{target}', ['root', 'x-root']] }));
    expect(r.problems).toEqual([expect.stringMatching(/target web account root .* and target web account x-root .* can render the same principal, e.g. "x-x-root@web" for some user names/)]);
  });

  it('fail/{user} against a fixed format on another target: user alice on web/root vs eb/alice.root', () => {
    const found = principalCollisions(targetsOf({ web: ['{user}.{account}@{target}', ['root']], eb: ['{account}@w{target}', ['alice.root']] }));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ a: { target: 'web', account: 'root' }, b: { target: 'eb', account: 'alice.root' }, viaUser: true });
    expect(found[0].principal).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]*\.root@web$/);
    expect(found[0].principal).toBe('alice.root@web');
  });

  it('ok/separators outside the name alphabet keep every pair apart, with or without {user}', () => {
    const accounts = ['root', 'x-root', 'prod-root', 'deploy', 'a.b', 'a-b'];
    for (const fmt of ['{account}@{target}', '{target}:{account}', '{user}+{account}@{target}', '{account}={user}@{target}', 'jit:{target}:{account}:{user}']) {
      const spec = Object.fromEntries(['web', 'web-prod', 'web.prod', 'prod'].map((t) => [t, [fmt, accounts] as [string, string[]]]));
      expect(principalCollisions(targetsOf(spec)), fmt).toEqual([]);
      expect(checkPolicy(policyWithTargets(spec)).ok, fmt).toBe(true);
    }
  });

  it('ok/the same account listed twice on a target is one pair, not a collision', () => {
    expect(principalCollisions(targetsOf({ web: ['{target}-{account}', ['root', 'root']] }))).toEqual([]);
  });

  it('ok/the example policy fixture still validates', () => {
    expect(checkPolicy(policyWith(() => {})).ok).toBe(true);
  });
});

describe('the {user} reasoning against brute force', () => {
  // Small alphabets so brute force over every user name up to 4 characters is complete enough.
  const NAME_CHARS = ['a', 'b', '-', '.'];
  const users = (() => {
    const out: string[] = [];
    const grow = (s: string) => {
      if (s.length) out.push(s);
      if (s.length < 4) for (const c of NAME_CHARS) if (s.length || /[a-z]/.test(c)) grow(s + c);
    };
    grow('');
    return out;
  })();
  const FORMATS = ['{target}-{account}', '{user}-{account}@{target}', '{account}.{user}@{target}', '{target}{user}-{account}', '{account}@{target}', '{user}{target}-{account}', '{target}.{account}'];
  const NAMES = ['a', 'b', 'a-b', 'b.a', 'ab', 'a-a'];

  let seed = 12345;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
  const pick = <T>(xs: T[]) => xs[rnd(xs.length)];

  it('ok/every collision brute force finds is reported; every reported witness really renders for both pairs', () => {
    let bruteCollisions = 0;
    for (let round = 0; round < 300; round++) {
      const spec: Record<string, [string, string[]]> = {};
      for (let t = 0; t < 3; t++) spec[pick(NAMES)] = [pick(FORMATS), [...new Set([pick(NAMES), pick(NAMES)])]];
      const targets = targetsOf(spec);
      const found = principalCollisions(targets);
      const key = (x: { target: string; account: string }) => `${x.target}/${x.account}`;
      const reported = new Set(found.flatMap((c) => [`${key(c.a)}|${key(c.b)}`, `${key(c.b)}|${key(c.a)}`]));

      // brute force: every pair × every user name
      const byPrincipal = new Map<string, Set<string>>();
      for (const [target, t] of Object.entries(targets)) {
        for (const account of t.accounts) {
          for (const user of t.principalFormat.includes('{user}') ? users : ['unused']) {
            const [p] = renderPrincipals(t.principalFormat, { target, account, user });
            (byPrincipal.get(p) ?? byPrincipal.set(p, new Set()).get(p)!).add(`${target}/${account}`);
          }
        }
      }
      for (const pairs of byPrincipal.values()) {
        const list = [...pairs];
        for (let i = 0; i < list.length; i++) {
          for (let j = i + 1; j < list.length; j++) {
            bruteCollisions++;
            expect(reported.has(`${list[i]}|${list[j]}`), `${list[i]} vs ${list[j]} in ${JSON.stringify(spec)}`).toBe(true);
          }
        }
      }
      // every witness renders for both pairs with some user name (any, not just the small ones)
      for (const c of found) {
        for (const side of [c.a, c.b]) {
          const fmt = targets[side.target].principalFormat;
          const re = new RegExp(
            '^' + fmt.split(/(\{(?:account|target|user)\})/).map((part) =>
              part === '{user}' ? '[A-Za-z0-9][A-Za-z0-9._-]*' : (part === '{account}' ? side.account : part === '{target}' ? side.target : part).replace(/[.*+?^${}()|[\]\\-]/g, '\\$&'),
            ).join('') + '$',
          );
          expect(c.principal, `${c.principal} for ${key(side)} via ${fmt}`).toMatch(re);
        }
      }
    }
    expect(bruteCollisions).toBeGreaterThan(20); // the generator does produce collisions to check against
  });
});

describeWithTools(['ssh-keygen'], 'jit-sshd policy validate (the same check as policy load and reload)', () => {
  it('fail/the issue\'s colliding policy is refused by the operator command, naming both pairs and the principal', () => {
    ensureBuilt();
    const env = makeEnv({
      targets: `  web: { hosts: [127.0.0.1], accounts: [prod-root], principalFormat: "{target}-{account}" }
  web-prod: { hosts: [127.0.0.1], accounts: [root], principalFormat: "{target}-{account}" }`,
    });
    try {
      const r = spawnSync(process.execPath, [join(REPO, 'dist/cli/jit-sshd.js'), 'policy', 'validate', '--config', env.configPath], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('policy.yaml: targets.web-prod.principalFormat: target web account prod-root ("{target}-{account}") and target web-prod account root ("{target}-{account}") both render the principal "web-prod-root"');
    } finally {
      env.cleanup();
    }
  });
});
