/**
 * A private OpenSSH sshd for tests: its own temp dir, host key, config and loopback port,
 * trusting the given CA keys, mapping accounts to principals through files. The real
 * server is the judge of our certificates; there is no mock here.
 *
 *   const sshd = await startSshd({ trustedCaKeys: ca.publicKeyLine, principalsFor: { root: ['root@web'] } });
 *   const r = await sshd.runSsh(keyFile, certFile, 'echo ok');
 *   await sshd.stop();   // always, in afterAll
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { findTool, inCI } from './tools.js';

export interface SshdOptions {
  /** TrustedUserCAKeys file content: one CA public key per line. Ignored with configFile. */
  trustedCaKeys?: string;
  /**
   * Run sshd on this config file as-is (it must set HostKey, PidFile, ListenAddress 127.0.0.1);
   * the harness then writes no config, CA or principals files of its own (setPrincipals throws).
   * For configs made by scripts/host-setup.sh.
   */
  configFile?: string;
  /** account → principals accepted for it (AuthorizedPrincipalsFile). Default: none. */
  principalsFor?: Record<string, string[]>;
  /** Path of a KRL for RevokedKeys (sshd refuses every key when this file is missing). */
  revokedKeysFile?: string;
  /** Login account for runSsh; default the current user (root here). */
  user?: string;
  /** Extra sshd_config lines. */
  extraConfig?: string[];
}

export interface SshResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Sshd {
  port: number;
  dir: string;
  user: string;
  /** Everything sshd has logged so far (-e: logs go to stderr). */
  logs(): string;
  /** Resolves once the log matches re (sshd may log just after ssh exits); rejects after timeoutMs. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Rewrites the principals file of one account (sshd reads it at every login). */
  setPrincipals(account: string, principals: string[]): void;
  stop(): Promise<void>;
  sshArgs(keyFile: string, certFile?: string, user?: string): string[];
  runSsh(keyFile: string, certFile: string, command: string, opts?: { user?: string; bindAddress?: string }): Promise<SshResult>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.connect(port, '127.0.0.1');
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** sshd refuses logins to accounts whose password field marks them locked ('!…') when PAM is off. */
function ensureAccountUsable(user: string): void {
  if (process.getuid?.() !== 0) return;
  let shadow = '';
  try {
    shadow = execFileSync('getent', ['shadow', user], { encoding: 'utf8' });
  } catch {
    return;
  }
  const pw = shadow.split(':')[1] ?? '';
  if (!pw.startsWith('!')) return;
  if (!inCI) {
    throw new Error(`account ${user} is locked (password field starts with '!'); run: usermod -p '*' ${user}`);
  }
  // Only on throwaway CI machines: '*' means "no password login" but not "locked".
  execFileSync('usermod', ['-p', '*', user]);
}

async function launch(dir: string, configPath: string, port: number): Promise<{ proc: ChildProcess; log: { text: string } }> {
  const sshdPath = findTool('sshd');
  if (!sshdPath) throw new Error('sshd not found');
  // sshd insists on being started by absolute path (it re-executes itself per connection).
  const proc = spawn(sshdPath, ['-D', '-e', '-f', configPath, '-p', String(port)], {
    cwd: dir,
    detached: true, // own process group, so stop() also ends per-connection children
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = { text: '' };
  // sshd -e ends log lines with \r\n; keep plain \n so tests can match across lines.
  const append = (d: Buffer) => (log.text += d.toString().replace(/\r/g, ''));
  proc.stdout!.on('data', append);
  proc.stderr!.on('data', append);
  return { proc, log };
}

/** The harness's own sshd_config, CA and principals files; returns setPrincipals. */
function writeHarnessConfig(dir: string, configPath: string, opts: SshdOptions): (account: string, principals: string[]) => void {
  const hostKey = join(dir, 'host_ed25519');
  execFileSync(findTool('ssh-keygen')!, ['-q', '-t', 'ed25519', '-N', '', '-C', 'jit-test-host', '-f', hostKey]);
  const caFile = join(dir, 'trusted-user-ca-keys.pub');
  const ca = opts.trustedCaKeys ?? '';
  writeFileSync(caFile, ca.endsWith('\n') ? ca : `${ca}\n`);
  const principalsDir = join(dir, 'principals');
  mkdirSync(principalsDir);
  const setPrincipals = (account: string, principals: string[]) =>
    writeFileSync(join(principalsDir, account), principals.map((p) => `${p}\n`).join(''));
  for (const [account, principals] of Object.entries(opts.principalsFor ?? {})) setPrincipals(account, principals);

  writeFileSync(
    configPath,
    [
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'UsePAM no',
      'StrictModes no', // files live under /tmp
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'AuthenticationMethods publickey',
      'AuthorizedKeysFile none',
      `TrustedUserCAKeys ${caFile}`,
      `AuthorizedPrincipalsFile ${principalsDir}/%u`,
      ...(opts.revokedKeysFile ? [`RevokedKeys ${opts.revokedKeysFile}`] : []),
      'PermitRootLogin yes',
      'LogLevel VERBOSE',
      'UseDNS no',
      'X11Forwarding no',
      'PrintMotd no',
      'PrintLastLog no',
      ...(opts.extraConfig ?? []),
      '',
    ].join('\n'),
  );
  return setPrincipals;
}

export async function startSshd(opts: SshdOptions): Promise<Sshd> {
  const user = opts.user ?? userInfo().username;
  ensureAccountUsable(user);
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation dir

  const dir = mkdtempSync(join(tmpdir(), 'jit-sshd-'));
  const configPath = opts.configFile ?? join(dir, 'sshd_config');
  const setPrincipals = opts.configFile
    ? () => {
        throw new Error('setPrincipals: this sshd runs on a given configFile');
      }
    : writeHarnessConfig(dir, configPath, opts);

  let proc: ChildProcess | undefined;
  let log = { text: '' };
  let port = 0;
  // A free port can be taken between probing and binding: try a few.
  for (let attempt = 0; attempt < 3 && !proc; attempt++) {
    port = await freePort();
    const started = await launch(dir, configPath, port);
    const deadline = Date.now() + 10_000;
    let up = false;
    while (Date.now() < deadline && started.proc.exitCode === null) {
      if (/Server listening on 127\.0\.0\.1 port/.test(started.log.text) && (await canConnect(port))) {
        up = true;
        break;
      }
      await sleep(50);
    }
    if (up) {
      proc = started.proc;
      log = started.log;
    } else {
      try {
        process.kill(-started.proc.pid!, 'SIGTERM');
      } catch {
        /* already gone */
      }
      if (attempt === 2) {
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`sshd did not start on port ${port}:\n${started.log.text}`);
      }
    }
  }

  const sshPath = findTool('ssh')!;
  const sshArgs = (keyFile: string, certFile?: string, who = user) => [
    '-F', '/dev/null',
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'IdentitiesOnly=yes',
    '-o', 'IdentityAgent=none',
    '-o', 'ConnectTimeout=10',
    '-o', 'LogLevel=ERROR',
    '-i', keyFile,
    ...(certFile ? ['-o', `CertificateFile=${certFile}`] : []),
    '-p', String(port),
    `${who}@127.0.0.1`,
  ];

  const child = proc!;
  let stopped = false;
  return {
    port,
    dir,
    user,
    logs: () => log.text,
    async waitForLog(re, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (re.test(log.text)) return log.text;
        await sleep(25);
      }
      throw new Error(`sshd log never matched ${re}:\n${log.text}`);
    },
    setPrincipals,
    sshArgs,
    runSsh(keyFile, certFile, command, o = {}) {
      const args = [...(o.bindAddress ? ['-b', o.bindAddress] : []), ...sshArgs(keyFile, certFile, o.user ?? user), command];
      return new Promise((resolve, reject) => {
        const p = spawn(sshPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
        p.on('error', reject);
        p.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
      });
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        try {
          process.kill(-child.pid!, 'SIGTERM');
        } catch {
          /* already gone */
        }
        await Promise.race([exited, sleep(3000)]);
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
