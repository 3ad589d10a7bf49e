/**
 * Several jit-sshd replicas (child processes, built dist/) on one PostgreSQL database, as behind
 * a load balancer: each has its own data dir (checkpoints) sharing one CA key directory, and all
 * name the same publicUrl, so a challenge from one is answered on another.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initKeyring } from '../../src/store/ca-keys.js';
import { openCustody } from '../../src/signer/index.js';
import { REPO, type TestEnv } from './daemon.js';
import { freePort } from './pg.js';

export const PUBLIC_URL = 'https://jit.example.test';

export interface Replica {
  url: string;
  configPath: string;
  dataDir: string;
  child?: ChildProcess;
  output: string[];
}

export interface ReplicaSet {
  replicas: Replica[];
  start(i: number): Promise<void>;
  kill(i: number, signal?: NodeJS.Signals): Promise<void>;
  stopAll(): Promise<void>;
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => child.once('exit', () => r()));

export async function untilHealthy(r: Replica, limitMs = 20_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    if (r.child && r.child.exitCode !== null) throw new Error(`replica exited with ${r.child.exitCode}: ${r.output.join('').slice(-2000)}`);
    try {
      const res = await fetch(`${r.url}/healthz`);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() - t0 > limitMs) throw new Error(`replica ${r.url} not healthy after ${limitMs} ms: ${r.output.join('').slice(-2000)}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

export async function replicaSet(env: TestEnv, n: number, databaseUrl: string, extraConfig = ''): Promise<ReplicaSet> {
  const custody = await openCustody({ ca: { backend: 'file' }, dataDir: env.dataDir } as Parameters<typeof openCustody>[0]);
  initKeyring(env.dataDir, 'ed25519', custody);
  await custody.close();
  const base = readFileSync(env.configPath, 'utf8');
  const replicas: Replica[] = [];
  for (let i = 0; i < n; i++) {
    const dataDir = join(env.dir, `replica${i}`);
    mkdirSync(dataDir, { mode: 0o700 });
    symlinkSync(join(env.dataDir, 'ca'), join(dataDir, 'ca'));
    const configPath = join(env.dir, `replica${i}.yaml`);
    writeFileSync(
      configPath,
      base.replace(/^dataDir: .*$/m, `dataDir: ${dataDir}`) + `\npublicUrl: ${PUBLIC_URL}\nstore: { type: postgres, url: "${databaseUrl}", poolSize: 8 }\n${extraConfig}`,
    );
    replicas.push({ url: `http://127.0.0.1:${await freePort()}`, configPath, dataDir, output: [] });
  }
  const set: ReplicaSet = {
    replicas,
    async start(i) {
      const r = replicas[i];
      const child = spawn(process.execPath, [join(REPO, 'dist/cli/jit-sshd.js'), 'serve', '--config', r.configPath, '--listen', r.url.slice('http://'.length)], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      r.child = child;
      child.stdout?.on('data', (c) => r.output.push(String(c)));
      child.stderr?.on('data', (c) => r.output.push(String(c)));
      await untilHealthy(r);
    },
    async kill(i, signal = 'SIGKILL') {
      const c = replicas[i].child;
      if (!c) return;
      c.kill(signal);
      await exited(c);
    },
    async stopAll() {
      for (const r of replicas) if (r.child && r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGTERM');
      await Promise.all(replicas.map((r) => (r.child ? exited(r.child) : undefined)));
    },
  };
  return set;
}
