/**
 * Bench fixtures: a temp data dir with a policy (N users with static bearer tokens, one with an
 * SSH key for `jit-ssh login`), a daemon config, subject keys, and child processes that print
 * their URL once listening.
 */
import { spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { publicKeyBlobOf } from '../../dist/ca/signer.js';
import { encodeOpenSshPrivateKey } from '../../dist/ca/openssh-key.js';

export const REPO = resolve(import.meta.dirname, '../..');

export function publicLineOf(key, comment = 'bench') {
  return `ssh-ed25519 ${publicKeyBlobOf(key).toString('base64')} ${comment}`;
}

/** A fresh ed25519 key: { privateKey, publicLine }. */
export function ed25519(comment) {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicLine: publicLineOf(privateKey, comment) };
}

/**
 * @param {object} o
 * @param {number} [o.users]  users u0..u{n-1}, each with a static token
 * @returns {{dir, dataDir, configPath, policyPath, tokens: string[], login: {user, keyPath, publicLine}, cleanup()}}
 */
export function makeBenchEnv(o = {}) {
  const n = o.users ?? 8;
  const dir = mkdtempSync(join(tmpdir(), 'jit-bench-'));
  const dataDir = join(dir, 'data');
  const tokens = Array.from({ length: n }, () => `bench_${randomBytes(24).toString('base64url')}`);
  const loginKey = ed25519('bench-login@host');
  const keyPath = join(dir, 'login_id');
  writeFileSync(keyPath, encodeOpenSshPrivateKey(loginKey.privateKey, 'bench-login@host', 0x1234abcd), { mode: 0o600 });
  writeFileSync(`${keyPath}.pub`, loginKey.publicLine + '\n');
  const users = tokens.map((_, i) => `  u${i}: { groups: [oncall], keys: [] }`).join('\n');
  const tokenYaml = tokens
    .map((t, i) => `  - { name: t${i}, user: u${i}, sha256: ${createHash('sha256').update(t).digest('hex')} }`)
    .join('\n');
  const policyPath = join(dir, 'policy.yaml');
  writeFileSync(
    policyPath,
    `defaults: { ttl: 15m, maxTtl: 1h, backdate: 60s }
users:
${users}
  engineer: { groups: [oncall], keys: ["${loginKey.publicLine}"] }
tokens:
${tokenYaml}
targets:
  prod-db: { hosts: [db1.prod.example.com], accounts: [postgres, readonly] }
tasks:
  check-logs: { accounts: [readonly], maxTtl: 30m }
rules:
  - name: oncall-auto
    groups: [oncall]
    targets: [prod-*]
    tasks: [check-logs]
    approval: auto
    bindSourceAddress: true
`,
  );
  const configPath = join(dir, 'jit-sshd.yaml');
  writeFileSync(
    configPath,
    `listen: 127.0.0.1:0\ndataDir: ${dataDir}\npolicy: ${policyPath}\nlogLevel: info\nrateLimit: { auth: { perMinute: 100000 } }\n` +
      // The bench issues thousands of certificates for one user, far beyond the per-user defaults.
      `limits: { requestsPerMinute: 100000, liveCertificates: 1000000, pendingRequests: 10000 }\n` +
      // One process unless asked (o.config 'frontends: N'): the figures stay comparable across machines.
      (/^frontends:/m.test(o.config ?? '') ? '' : 'frontends: 0\n') +
      (o.config ?? ''),
  );
  return {
    dir,
    dataDir,
    configPath,
    policyPath,
    tokens,
    login: { user: 'engineer', keyPath, publicLine: loginKey.publicLine },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Spawns `node <script> args…` and resolves once a stdout line carries a "url" (pino's listening line). */
export function spawnListening(script, args, { timeoutMs = 60_000, nodeArgs = [] } = {}) {
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  return new Promise((resolvePromise, reject) => {
    let buf = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} did not start within ${timeoutMs} ms: ${stderr.slice(0, 2000)}`));
    }, timeoutMs);
    const onData = (c) => {
      buf += c;
      for (;;) {
        const nl = buf.indexOf('\n');
        if (nl < 0) break;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const j = JSON.parse(line);
          if (typeof j.url === 'string') {
            clearTimeout(timer);
            child.stdout.off('data', onData);
            child.stdout.resume(); // keep draining so the child never blocks on a full pipe
            resolvePromise({ child, url: j.url, stderr: () => stderr });
            return;
          }
        } catch {
          // not a JSON line
        }
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code} before listening: ${stderr.slice(0, 2000)}`));
    });
  });
}

export function spawnDaemon(env) {
  const nodeArgs = (process.env.BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter(Boolean);
  return spawnListening(join(REPO, 'dist/cli/jit-sshd.js'), ['serve', '--config', env.configPath], { nodeArgs });
}

export async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

/** Resident set size of a process in MiB (Linux /proc). */
/** Resident set of a process and its child processes (a daemon with front processes), MiB. */
export function rssTreeMb(pid) {
  let kids = [];
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    // no children file: the process alone
  }
  return Math.round([pid, ...kids].reduce((t, p) => t + (rssMb(p) ?? 0), 0) * 10) / 10;
}

export function rssMb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : null;
  } catch {
    return null;
  }
}

/** CertParams for certificate i of a bench run: the shape service/issue.ts signs (nonces reused from a pool of 256). */
export function benchCertParams(subjectBlob) {
  const nonces = Array.from({ length: 256 }, () => randomBytes(32));
  return (i) => ({
    type: 'user',
    publicKey: subjectBlob,
    serial: BigInt(i + 1),
    keyId: 'jit-ssh:req_AbCdEfGhIjKlMnOp:alice:check-logs',
    principals: ['readonly@prod-db'],
    validAfter: 1_800_000_000n,
    validBefore: 1_800_000_960n,
    criticalOptions: { 'source-address': '127.0.0.1/32' },
    extensions: { 'permit-pty': '' },
    nonce: nonces[i & 255],
  });
}
