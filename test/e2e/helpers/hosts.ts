/**
 * Hosts for the end-to-end suite: a temp root holding a plain sshd_config (what a server has
 * before jit-ssh), which scripts/host-setup.sh --root then configures; the private sshd runs on
 * exactly that file. Scripts run as child processes without blocking the event loop, because
 * the daemon they talk to runs in this process.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { REPO, TEST_HOST_TOKEN } from '../../helpers/daemon.js';
import { findTool } from '../../helpers/tools.js';

export const HOST_SETUP = join(REPO, 'scripts/host-setup.sh');
export const KRL_SYNC = join(REPO, 'scripts/krl-sync.sh');

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface TestHost {
  root: string;
  sshdConfig: string;
  etc: string;
  /** The installed sync command and its config, as the timer would run them. */
  syncBin: string;
  syncConf: string;
  cleanup(): void;
}

/**
 * A fresh root with a host key and a pre-jit-ssh sshd_config: loopback, keys only, root may log
 * in with keys, and a Match block at the end (host-setup must not put its lines inside it).
 */
export function makeHostRoot(name: string): TestHost {
  const root = mkdtempSync(join(tmpdir(), `jit-host-${name}-`));
  // host-setup.sh checks the config with `sshd -t`, which needs sshd's privilege separation dir
  // (a fresh machine has none until some sshd started).
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const sshDir = join(root, 'etc/ssh');
  mkdirSync(sshDir, { recursive: true });
  const hostKey = join(sshDir, 'ssh_host_ed25519_key');
  execFileSync(findTool('ssh-keygen')!, ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}-host`, '-f', hostKey]);
  const sshdConfig = join(sshDir, 'sshd_config');
  writeFileSync(
    sshdConfig,
    [
      `# ${name}: an ordinary server before jit-ssh`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${join(root, 'sshd.pid')}`,
      'UsePAM no',
      'StrictModes no', // the jit-ssh files live under /tmp here
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'AuthenticationMethods publickey',
      'AuthorizedKeysFile none',
      'PermitRootLogin prohibit-password',
      'LogLevel VERBOSE',
      'UseDNS no',
      'PrintMotd no',
      'PrintLastLog no',
      'Match User nobody',
      '  PermitTTY no',
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const etc = join(root, 'etc/ssh/jit-ssh');
  return {
    root,
    sshdConfig,
    etc,
    syncBin: join(root, 'usr/local/sbin/jit-ssh-krl-sync'),
    syncConf: join(etc, 'sync.conf'),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

export function hostSetup(host: TestHost, server: string, target: string, extra: string[] = [], env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return run('bash', [HOST_SETUP, '--server', server, '--target', target, '--root', host.root, '--host-token', TEST_HOST_TOKEN, ...extra], { env });
}

/** The host's own scheduled sync, run now (extra args override its config). */
export function hostSync(host: TestHost, extra: string[] = []): Promise<RunResult> {
  return run(host.syncBin, ['--config', host.syncConf, ...extra]);
}

/** path (relative to root) → sha256 of every file under root, except the paths skip() names. */
export function treeSums(root: string, skip: (rel: string) => boolean = () => false): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const rel = relative(root, p);
      if (skip(rel)) continue;
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else out[rel] = `${createHash('sha256').update(readFileSync(p)).digest('hex')} ${(st.mode & 0o7777).toString(8)} ${st.uid}`;
    }
  };
  walk(root);
  return out;
}

export const sha256File = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
