/**
 * A real jit-sshd for tests: temp data dir, a policy with users whose keys ssh-keygen made,
 * started in-process on a free loopback port (or as a child process for crash tests), and a
 * login helper that signs the challenge with the real `ssh-keygen -Y sign`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { startDaemon, type RunningDaemon } from '../../src/daemon.js';
import type { Clock } from '../../src/service/deps.js';
import { generateKey, sshKeygen, tempDir, type TestKey } from './keys.js';

export const REPO = resolve(import.meta.dirname, '../..');

/** The host token every test daemon accepts for GET /v1/host-config (config hostTokens). */
export const TEST_HOST_TOKEN = 'jit-test-host-token-0123456789abcdef';
const TEST_HOST_TOKEN_SHA256 = createHash('sha256').update(TEST_HOST_TOKEN).digest('hex');

export interface TestEnv {
  dir: string;
  dataDir: string;
  configPath: string;
  policyPath: string;
  keys: Record<string, TestKey>;
  cleanup(): void;
}

export interface EnvOptions {
  users?: Record<string, string[]>; // user → groups
  /** Extra YAML appended under `rules:` (already indented as list items) before the defaults. */
  rules?: string;
  targets?: string;
  tasks?: string;
  tokens?: string;
  config?: string; // extra config lines
}

const DEFAULT_USERS: Record<string, string[]> = {
  alice: ['sre', 'oncall'],
  bob: ['sre-leads'],
  carol: ['sre-leads', 'sre'],
  dave: ['dba'],
  erin: ['admins', 'auditors'],
  mallory: ['interns'],
};

export const DEFAULT_RULES = `
  - name: oncall-auto
    groups: [oncall]
    targets: [prod-*]
    tasks: [check-logs, restart-service]
    approval: auto
  - name: incident-with-approval
    groups: [dba, sre]
    targets: [prod-*]
    tasks: [incident]
    approval: { approvers: [sre-leads], count: 1 }
  - name: two-person
    groups: [dba, sre]
    targets: [vault]
    tasks: [incident]
    approval: { approvers: [sre-leads], count: 2 }
  - name: staging-auto
    groups: [sre, dba, sre-leads]
    targets: [staging-*]
    tasks: ["*"]
    approval: auto
`;

export function makeEnv(opts: EnvOptions = {}): TestEnv {
  const t = tempDir('jit-daemon-');
  const users = opts.users ?? DEFAULT_USERS;
  const keys: Record<string, TestKey> = {};
  for (const u of Object.keys(users)) keys[u] = generateKey(t.dir, `${u}_id`, 'ed25519', '', `${u}@test`);
  const dataDir = join(t.dir, 'data');
  const policyPath = join(t.dir, 'policy.yaml');
  const configPath = join(t.dir, 'jit-sshd.yaml');
  const userYaml = Object.entries(users)
    .map(([u, g]) => `  ${u}:\n    groups: [${g.join(', ')}]\n    keys: ["${keys[u].publicLine}"]`)
    .join('\n');
  writeFileSync(
    policyPath,
    `defaults: { ttl: 15m, maxTtl: 1h, backdate: 60s }
users:
${userYaml}
tokens: [${opts.tokens ?? ''}]
targets:
  prod-db: { hosts: [127.0.0.1], accounts: [postgres, readonly, deploy] }
  prod-web: { hosts: [127.0.0.1], accounts: [deploy, readonly] }
  staging-web: { hosts: [127.0.0.1], accounts: [deploy, readonly] }
  vault: { hosts: [127.0.0.1], accounts: [root] }
${opts.targets ?? ''}
tasks:
  check-logs: { accounts: [readonly], maxTtl: 30m }
  restart-service: { accounts: [deploy], forceCommand: "echo restarted", maxTtl: 10m }
  incident: { accounts: [postgres, deploy, root], maxTtl: 1h, requireTicket: "^INC-[0-9]+$", extensions: [permit-pty, permit-port-forwarding] }
${opts.tasks ?? ''}
rules:
${opts.rules ?? ''}${DEFAULT_RULES}`,
  );
  writeFileSync(
    configPath,
    `listen: 127.0.0.1:0\ndataDir: ${dataDir}\npolicy: ${policyPath}\nlogLevel: silent\nrateLimit: { auth: { perMinute: 100000, failuresPerUserPerMinute: 100000 } }\n` +
      `hostTokens: [{ name: test-hosts, sha256: "${TEST_HOST_TOKEN_SHA256}" }]\n` +
      // Every test client connects from 127.0.0.1 (the reliability suite runs 1,000 at once), so
      // test daemons allow that unless a test sets its own connection limits.
      `${/^connections:/m.test(opts.config ?? '') ? '' : 'connections: { max: 5000, perAddress: 5000 }\n'}` +
      // One process unless a test asks for fronts (test/server/fronts.test.ts and the suites it
      // parametrises): hundreds of test daemons need not fork a front each.
      `${/^frontends:/m.test(opts.config ?? '') ? '' : 'frontends: 0\n'}${opts.config ?? ''}`,
  );
  return { dir: t.dir, dataDir, configPath, policyPath, keys, cleanup: t.cleanup };
}

export async function startTestDaemon(env: TestEnv, opts: { clock?: Clock } = {}): Promise<RunningDaemon> {
  return startDaemon({ configPath: env.configPath, clock: opts.clock, log: pino({ level: 'silent' }) });
}

/** Signs a challenge exactly as docs/api.md says: printf %s "$challenge" | ssh-keygen -Y sign -n jit-ssh -f key */
export function sshKeygenSign(keyPath: string, message: string, namespace = 'jit-ssh'): string {
  return sshKeygen(['-Y', 'sign', '-n', namespace, '-f', keyPath], message);
}

export async function api(
  url: string,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url + path, {
    method,
    headers: {
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON (text/plain CA lines)
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** SSH-key login through the API; returns the bearer token. */
export async function login(url: string, user: string, key: TestKey): Promise<string> {
  const ch = await api(url, 'POST', '/v1/auth/challenge', { user });
  if (ch.status !== 200) throw new Error(`challenge: ${ch.status} ${JSON.stringify(ch.body)}`);
  const signature = sshKeygenSign(key.path, ch.body.challenge);
  const tok = await api(url, 'POST', '/v1/auth/token', { user, challenge: ch.body.challenge, signature });
  if (tok.status !== 200) throw new Error(`token: ${tok.status} ${JSON.stringify(tok.body)}`);
  return tok.body.token;
}

/** A fresh ed25519 subject key (private file + public line) for certificate requests. */
export function subjectKey(env: TestEnv, name: string): TestKey {
  return generateKey(env.dir, name, 'ed25519', '', `${name}@jit`);
}

/** jit-sshd as a child process (built dist/), for crash and CLI tests. */
export function spawnDaemon(env: TestEnv, listen: string): ChildProcess {
  return spawn(process.execPath, [join(REPO, 'dist/cli/jit-sshd.js'), 'serve', '--config', env.configPath, '--listen', listen], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** A loopback port free right now (bound, then released): for a URL needed before the daemon starts. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer().listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}
