/**
 * Runs the built `jit-ssh` as a child process (never in-process: the daemon under test shares
 * this process's event loop, so the CLI must not block it), with HOME in a temp dir.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../helpers/daemon.js';
import { findTool } from '../helpers/tools.js';

export const CLI = join(REPO, 'dist/cli/jit-ssh.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** Builds dist/ when a source file is newer than the built CLI (`npm test` builds anyway). */
export function ensureBuilt(): void {
  if (existsSync(CLI) && statSync(CLI).mtimeMs >= newestMtime(join(REPO, 'src'))) return;
  execFileSync(process.execPath, [join(REPO, 'node_modules/typescript/bin/tsc'), '-p', join(REPO, 'tsconfig.json')], { stdio: 'inherit' });
}

/** A clean environment: no agent, no JITSSH_* from the developer's shell. */
export function baseEnv(home: string, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, LANG: 'C.UTF-8', TZ: process.env.TZ };
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

export function startCli(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  return { child, done };
}

export function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return startCli(args, env).done;
}

/**
 * Fresh HOMEs under a dir known later (after beforeAll), one per scenario, so certificate dirs
 * and token caches never leak between tests.
 */
export function homeMaker(dir: () => string): () => string {
  let n = 0;
  return () => {
    const h = join(dir(), `home${++n}`);
    mkdirSync(h);
    return h;
  };
}

/** A real ssh-agent on a private socket; stop() in afterAll. */
export async function startAgent(dir: string): Promise<{ sock: string; add(keyFile: string): void; list(): string; stop(): void }> {
  const sock = join(dir, 'agent.sock');
  const proc = spawn(findTool('ssh-agent')!, ['-D', '-a', sock], { stdio: ['ignore', 'pipe', 'pipe'] });
  const deadline = Date.now() + 5000;
  while (!existsSync(sock)) {
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error('ssh-agent did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
  const env = { ...process.env, SSH_AUTH_SOCK: sock };
  return {
    sock,
    add: (keyFile) => execFileSync(findTool('ssh-add')!, [keyFile], { env, stdio: 'pipe' }),
    /** `ssh-add -L`; empty when the agent holds nothing. */
    list: () => {
      try {
        return execFileSync(findTool('ssh-add')!, ['-L'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      } catch {
        return ''; // exit 1: "The agent has no identities."
      }
    },
    stop: () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
    },
  };
}

/** Runs a shell command under script(1), i.e. on a pseudo-terminal; `out` is the transcript. */
export function spawnScript(command: string, env: NodeJS.ProcessEnv, input?: string): { done: Promise<{ code: number | null; out: string }> } {
  const child = spawn(findTool('script')!, ['-qefc', command, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  if (input !== undefined) setTimeout(() => child.stdin!.write(input), 700);
  const done = new Promise<{ code: number | null; out: string }>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
  return { done };
}
