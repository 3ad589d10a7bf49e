/** The jit-sshd admin commands as an operator runs them: the built binary, real files, real ssh-keygen. */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, login, makeEnv, REPO, startTestDaemon, subjectKey, type TestEnv } from '../helpers/daemon.js';
import { sshKeygen } from '../helpers/keys.js';
import { describeWithTools } from '../helpers/tools.js';

const BIN = join(REPO, 'dist/cli/jit-sshd.js');

function run(args: string[], env: TestEnv): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args, '--config', env.configPath], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The test policy with check-logs requiring a reason, and oncall-auto allowing one live grant. */
function policyWithReasonTask(env: TestEnv): string {
  const file = join(env.dir, 'reason-policy.yaml');
  const text = readFileSync(env.policyPath, 'utf8')
    .replace('check-logs: { accounts: [readonly], maxTtl: 30m }', 'check-logs: { accounts: [readonly], maxTtl: 30m, requireReason: true }')
    .replace('approval: auto\n  - name: incident-with-approval', 'approval: auto\n    maxActive: 1\n  - name: incident-with-approval');
  writeFileSync(file, text);
  return file;
}

describeWithTools(['ssh-keygen'], 'jit-sshd admin commands', () => {
  let env: TestEnv;
  beforeAll(() => {
    env = makeEnv();
  });
  afterAll(() => env?.cleanup());

  it('ok/init makes a 0600 ed25519 CA key that ssh-keygen reads; ca show prints it', () => {
    const r = run(['init'], env);
    expect(r.code).toBe(0);
    const line = r.stdout.trim().split('\n')[1];
    expect(line).toMatch(/^ssh-ed25519 AAAA/);
    const keyring = JSON.parse(readFileSync(join(env.dataDir, 'ca/keyring.json'), 'utf8'));
    const keyFile = join(env.dataDir, 'ca', keyring.keys[0].file);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(sshKeygen(['-y', '-f', keyFile]).split(' ').slice(0, 2)).toEqual(line.split(' ').slice(0, 2));
    expect(run(['ca', 'show'], env).stdout.trim()).toBe(line);
    expect(run(['init'], env).stdout).toMatch(/^exists/);
  });

  it('fail/start refuses a group-readable CA key', () => {
    const keyring = JSON.parse(readFileSync(join(env.dataDir, 'ca/keyring.json'), 'utf8'));
    const keyFile = join(env.dataDir, 'ca', keyring.keys[0].file);
    chmodSync(keyFile, 0o640);
    try {
      const r = run(['serve'], env);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/readable by group or others.*chmod 600/);
    } finally {
      chmodSync(keyFile, 0o600);
    }
  });

  it('fail/start refuses a non-loopback listen without TLS', () => {
    const r = run(['serve', '--listen', '0.0.0.0:7999'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/tls/);
  });

  it('ok/policy validate; fail/an invalid policy lists every problem with file and path', () => {
    expect(run(['policy', 'validate'], env).code).toBe(0);
    const bad = join(env.dir, 'bad-policy.yaml');
    writeFileSync(bad, readFileSync(env.policyPath, 'utf8').replace('approval: { approvers: [sre-leads], count: 1 }', 'approval: { approvers: [sre-leads], count: 0 }\n    colour: red'));
    const r = run(['policy', 'validate', '--policy', bad], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bad-policy\.yaml: rules\[1\]\.approval\.count/);
    expect(r.stderr).toMatch(/colour/);
    writeFileSync(bad, 'users: {\n  alice: [\n');
    const y = run(['policy', 'validate', '--policy', bad], env);
    expect(y.code).toBe(1);
    expect(y.stderr).toMatch(/bad-policy\.yaml:\d+:\d+/);
  });

  it('ok/policy check explains auto, approval and deny', () => {
    const auto = run(['policy', 'check', '--user', 'alice', '--target', 'prod-db', '--task', 'check-logs'], env);
    expect(auto.code).toBe(0);
    expect(auto.stdout).toMatch(/oncall-auto/);
    const appr = run(['policy', 'check', '--user', 'dave', '--target', 'prod-db', '--task', 'incident', '--ticket', 'INC-7'], env);
    expect(appr.stdout).toMatch(/approval/i);
    const deny = run(['policy', 'check', '--user', 'mallory', '--target', 'prod-db', '--task', 'check-logs', '--json'], env);
    expect(deny.code).toBe(2);
    expect(JSON.parse(deny.stdout).decision).toBe('deny');
  });

  it('ok/policy validate warns and errs on mistakes that break access, as file: path: problem', () => {
    // The test policy's two-person rule: carol is both a requester and one of only two approvers.
    const ok = run(['policy', 'validate'], env);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toContain(`warning: ${env.policyPath}: rules[2].approval.count: needs 2 approvals but only 2 people (bob, carol) may approve: requests from carol`);
    const broken = join(env.dir, 'broken-policy.yaml');
    writeFileSync(broken, readFileSync(env.policyPath, 'utf8').replace('approval: { approvers: [sre-leads], count: 1 }', 'approval: { approvers: [db-leads], count: 1 }'));
    const r = run(['policy', 'validate', '--policy', broken, '--json'], env);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout);
    expect(out.ok).toBe(false);
    expect(out.errors).toContain(`${broken}: rules[1].approval.approvers: nobody is in approver group db-leads (and there is no SSO to provide it): requests waiting for it can never be approved`);
  });

  it('ok/policy check takes --reason and --active-grants; fail/an unknown name is exit 1 with a did-you-mean', () => {
    const withReason = policyWithReasonTask(env);
    const without = run(['policy', 'check', '--policy', withReason, '--user', 'alice', '--target', 'prod-db', '--task', 'check-logs'], env);
    expect(without.code).toBe(2);
    expect(without.stdout).toMatch(/reasonGiven/);
    const given = run(['policy', 'check', '--policy', withReason, '--user', 'alice', '--target', 'prod-db', '--task', 'check-logs', '--reason', 'disk full'], env);
    expect(given.code).toBe(0);
    expect(given.stdout).toMatch(/^decision: auto-approve/);
    const busy = run(['policy', 'check', '--policy', withReason, '--user', 'alice', '--target', 'prod-db', '--task', 'check-logs', '--reason', 'disk full', '--active-grants', '1'], env);
    expect(busy.code).toBe(2);
    expect(busy.stdout).toMatch(/FAIL maxActive/);
    const typo = run(['policy', 'check', '--user', 'alice', '--target', 'prod-dv', '--task', 'check-logs'], env);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toBe('error: --target: no target prod-dv in the policy; did you mean prod-db?\n');
    const task = run(['policy', 'check', '--user', 'alice', '--target', 'prod-db', '--task', 'restart'], env);
    expect(task.stderr).toBe('error: --task: no task restart in the policy; did you mean restart-service?\n');
  });

  it('ok/host-config prints the sshd lines and principals per account', () => {
    const r = run(['host-config', '--target', 'prod-db'], env);
    expect(r.stdout).toMatch(/TrustedUserCAKeys /);
    expect(r.stdout).toMatch(/AuthorizedPrincipalsFile .*%u/);
    expect(r.stdout).toMatch(/RevokedKeys /);
    const j = JSON.parse(run(['host-config', '--target', 'prod-db', '--format', 'json'], env).stdout);
    expect(j.principals.postgres).toEqual(['postgres@prod-db']);
    expect(run(['host-config', '--target', 'nope'], env).code).toBe(1);
  });

  it('ok/rotate keeps the old key trusted; retire is refused while its certificates live, allowed with --force; krl and audit verify work', async () => {
    const d = await startTestDaemon(env);
    let serial: string;
    let certLine: string;
    try {
      const token = await login(d.url, 'alice', env.keys.alice);
      const r = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: subjectKey(env, 'rot').publicLine }, token);
      expect(r.status).toBe(201);
      serial = r.body.serial;
      certLine = r.body.certificate;
      expect((await api(d.url, 'POST', `/v1/requests/${r.body.id}/revoke`, {}, token)).status).toBe(200);
    } finally {
      await d.close();
    }
    const oldFp = JSON.parse(run(['ca', 'show', '--json'], env).stdout)[0].fingerprint;
    expect(run(['ca', 'rotate'], env).code).toBe(0);
    const shown = run(['ca', 'show'], env).stdout.trim().split('\n');
    expect(shown).toHaveLength(2);
    const refused = run(['ca', 'retire', oldFp], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/valid until/);

    const krlFile = join(env.dir, 'out.krl');
    expect(run(['krl', '--out', krlFile], env).code).toBe(0);
    const certFile = join(env.dir, 'rot-cert.pub');
    writeFileSync(certFile, certLine + '\n');
    const q = spawnSync('ssh-keygen', ['-Q', '-f', krlFile, certFile], { encoding: 'utf8' });
    expect(q.stdout + q.stderr).toMatch(/REVOKED/);
    expect(execFileSync('ssh-keygen', ['-Q', '-l', '-f', krlFile], { encoding: 'utf8' })).toContain(serial);

    expect(run(['ca', 'retire', oldFp, '--force'], env).code).toBe(0);
    expect(run(['ca', 'show'], env).stdout.trim().split('\n')).toHaveLength(1);

    expect(run(['audit', 'verify'], env).code).toBe(0);
    const auditFile = join(env.dataDir, 'audit.jsonl');
    const lines = readFileSync(auditFile, 'utf8').split('\n');
    lines[1] = lines[1].replace('"alice"', '"mallory"');
    writeFileSync(auditFile, lines.join('\n'));
    const broken = run(['audit', 'verify'], env);
    expect(broken.code).not.toBe(0);
    expect(broken.stderr).toMatch(/broken/);
  });
});
