/** `jit-sshd policy check --groups` decides for an SSO user as the daemon would; `policy validate` flags groups nobody has. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { makeEnv, REPO, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';

describeWithTools(['ssh-keygen'], 'jit-sshd policy check for SSO users', () => {
  let env: TestEnv;
  beforeAll(() => {
    env = makeEnv();
  });
  afterAll(() => env?.cleanup());
  const check = (...args: string[]) => {
    const r = spawnSync(process.execPath, [join(REPO, 'dist/cli/jit-sshd.js'), 'policy', 'check', ...args, '--config', env.configPath], { encoding: 'utf8', timeout: 20_000 });
    return { code: r.status, out: r.stdout + r.stderr };
  };

  it('ok/an SSO-only user with IdP group oncall is auto-approved by oncall-auto', () => {
    const r = check('--user', 'zoe', '--groups', 'oncall,staff', '--target', 'prod-db', '--task', 'check-logs');
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/oncall-auto/);
  });
  it('ok/IdP groups add to a policy user’s groups', () => {
    // dave is dba only; as an SSO login with oncall he matches oncall-auto.
    expect(check('--user', 'dave', '--target', 'prod-db', '--task', 'check-logs').code).toBe(2);
    expect(check('--user', 'dave', '--groups', 'oncall', '--target', 'prod-db', '--task', 'check-logs').code).toBe(0);
  });
  it('fail/an SSO user whose groups match no rule is denied', () => {
    const r = check('--user', 'zoe', '--groups', 'interns', '--target', 'prod-db', '--task', 'check-logs', '--json');
    expect(r.code).toBe(2);
    expect(JSON.parse(r.out).decision).toBe("deny");
  });
  it('fail/no policy entry and no --groups: a hint, exit 1', () => {
    const r = check('--user', 'zoe', '--target', 'prod-db', '--task', 'check-logs');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/--groups/);
  });
  it('fail/a group that breaks the name rule', () => {
    const r = check('--user', 'zoe', '--groups', 'ok,/bad', '--target', 'prod-db', '--task', 'check-logs');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/'\/bad' is not a group name/);
  });
});

describeWithTools(['ssh-keygen'], 'jit-sshd policy validate: groups no user has', () => {
  const rules = `
  - name: contractors
    groups: [contractors]
    targets: [staging-*]
    tasks: ["*"]
    approval: auto
`;
  const validate = (env: TestEnv, json = false) => {
    const r = spawnSync(process.execPath, [join(REPO, 'dist/cli/jit-sshd.js'), 'policy', 'validate', ...(json ? ['--json'] : []), '--config', env.configPath], { encoding: 'utf8', timeout: 20_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  it('ok/without SSO: a warning that the rule never matches, exit 0', () => {
    const env = makeEnv({ rules });
    try {
      const r = validate(env);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain(`warning: ${env.policyPath}: rules[0].groups: nobody is in group contractors (and there is no SSO to provide it): it matches no one`);
    } finally {
      env.cleanup();
    }
  });
  it('ok/with SSO: says the group must come from the IdP; --json lists it', () => {
    const env = makeEnv({ rules, config: 'oidc: { issuer: "https://idp.example.com", clientId: jit }\n' });
    try {
      const r = validate(env, true);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout).warnings).toContain(`${env.policyPath}: rules[0].groups: no users: entry has group contractors; it can only come from the IdP's groups claim`);
    } finally {
      env.cleanup();
    }
  });
  it('ok/no warning when every named group has a user', () => {
    const env = makeEnv();
    try {
      expect(validate(env).stderr).not.toMatch(/nobody is in group|no users: entry has group/);
    } finally {
      env.cleanup();
    }
  });
});
