/**
 * Every command example in README.md and docs/*.md runs, as written, against the shipped
 * config/jit-sshd.yaml and config/policy.yaml. Each document is one session (one bash, blocks
 * in order, `set -eo pipefail`), in a sandbox that is what the docs assume of a reader's machine:
 * a HOME with alice's key in ~/.ssh/id_ed25519 (and bob's and erin's beside it), `jit-ssh` and
 * `jit-sshd` on PATH (as `npm link` puts them), an ssh-agent, and jit-sshd running from a copy
 * of config/ whose users have those keys. Two things are adapted, nothing else: the default
 * address 127.0.0.1:7422 becomes the test daemon's free port (in the text and as JITSSH_SERVER), and ssh to the example hosts
 * (db1.prod.example.com, …) reaches a real loopback sshd that trusts the CA (JITSSH_SSH_OPTS).
 * Console blocks must also print what they show, up to run-specific values (normalizeOutput).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve, sep } from 'node:path';
import { userInfo } from 'node:os';
import { parseDocument } from 'yaml';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/daemon.js';
import { generateKey, tempDir } from '../helpers/keys.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import { describeWithTools } from '../helpers/tools.js';
import { consoleSteps, documentationBlocks, extractBlocks, normalizeOutput, type DocBlock } from './doc-blocks.js';

const DEFAULT_ADDRESS = '127.0.0.1:7422';
const DOCS = documentationBlocks(REPO);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

interface Sandbox {
  dir: string;
  home: string;
  env: NodeJS.ProcessEnv;
  address: string;
  stop(): Promise<void>;
}

/** The reader's machine: see the header. */
async function makeSandbox(sshdFor: (caLines: string) => Promise<Sshd>): Promise<Sandbox> {
  const t = tempDir('jit-docs-');
  const home = join(t.dir, 'home');
  mkdirSync(join(home, '.ssh'), { recursive: true, mode: 0o700 });
  const keys = {
    alice: generateKey(join(home, '.ssh'), 'id_ed25519', 'ed25519', '', 'alice@laptop'),
    bob: generateKey(join(home, '.ssh'), 'bob_ed25519', 'ed25519', '', 'bob@laptop'),
    erin: generateKey(join(home, '.ssh'), 'erin_ed25519', 'ed25519', '', 'erin@laptop'),
  };
  // A checkout as the reader has it: the repository's files, with config/ a copy the keys go into.
  for (const entry of ['dist', 'docs', 'node_modules', 'scripts', 'src', 'package.json', 'tsconfig.json']) symlinkSync(join(REPO, entry), join(t.dir, entry));
  cpSync(join(REPO, 'config'), join(t.dir, 'config'), { recursive: true });
  const policyPath = join(t.dir, 'config/policy.yaml');
  const policy = parseDocument(readFileSync(policyPath, 'utf8'));
  for (const [user, key] of Object.entries(keys)) {
    if (!policy.hasIn(['users', user])) throw new Error(`config/policy.yaml has no user ${user}; the docs use alice, bob and erin`);
    policy.setIn(['users', user, 'keys'], [key.publicLine]);
  }
  writeFileSync(policyPath, policy.toString());

  const bin = join(t.dir, 'bin');
  mkdirSync(bin);
  for (const name of ['jit-ssh', 'jit-sshd']) {
    writeFileSync(join(bin, name), `#!/bin/sh\nexec "${process.execPath}" "${REPO}/dist/cli/${name}.js" "$@"\n`);
    chmodSync(join(bin, name), 0o755);
  }
  const agentSock = join(t.dir, 'agent.sock');
  const agent = spawnSync('ssh-agent', ['-a', agentSock, '-s'], { encoding: 'utf8' });
  const agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(agent.stdout)?.[1]);

  const address = `127.0.0.1:${await freePort()}`;
  const daemon: ChildProcess = spawn(process.execPath, [join(REPO, 'dist/cli/jit-sshd.js'), 'serve', '--listen', address], {
    cwd: t.dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let daemonLog = '';
  daemon.stdout!.on('data', (d) => (daemonLog += d));
  daemon.stderr!.on('data', (d) => (daemonLog += d));
  let caLines = '';
  for (let i = 0; i < 200 && !caLines; i++) {
    await sleep(50);
    caLines = await fetch(`http://${address}/v1/ca`).then((r) => (r.ok ? r.text() : ''), () => '');
  }
  if (!caLines) throw new Error(`jit-sshd did not start:\n${daemonLog}`);
  const sshd = await sshdFor(caLines);

  const env: NodeJS.ProcessEnv = {
    PATH: `${bin}:${process.env.PATH}`,
    HOME: home,
    USER: 'alice',
    LOGNAME: 'alice',
    LANG: 'C.UTF-8',
    TZ: process.env.TZ ?? 'UTC',
    TMPDIR: join(t.dir, 'tmp'),
    SSH_AUTH_SOCK: agentSock,
    JITSSH_SERVER: `http://${address}`, // jit-ssh's default is http://127.0.0.1:7422
    // The example hosts are names of example.com: reach the loopback sshd, as its own account.
    JITSSH_SSH_OPTS: `-p ${sshd.port} -o HostName=127.0.0.1 -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR -o BatchMode=yes`,
    JITSSH_SSH_USER: sshd.user,
  };
  mkdirSync(env.TMPDIR!);
  return {
    dir: t.dir,
    home,
    env,
    address,
    async stop() {
      daemon.kill('SIGTERM');
      await new Promise((r) => (daemon.exitCode !== null ? r(undefined) : daemon.once('exit', r)));
      await sshd.stop();
      if (agentPid) process.kill(agentPid, 'SIGTERM');
      t.cleanup();
    },
  };
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** One bash script for a document: blocks in order, console commands' output kept per step. */
function scriptFor(blocks: DocBlock[], out: string, address: string): string {
  const parts = ['set -eo pipefail', 'cd "$SANDBOX_DIR"'];
  blocks.forEach((b, i) => {
    if (b.notRun) return;
    const text = b.text.split(DEFAULT_ADDRESS).join(address);
    parts.push(`echo ${i} > ${shellQuote(join(out, 'current'))}`);
    if (b.lang === 'sh') {
      parts.push(text);
      return;
    }
    consoleSteps(text).forEach((s, j) => {
      const file = join(out, `${i}.${j}`);
      parts.push(`{ ${s.command}\n} > ${shellQuote(file)} 2>&1 && echo 0 > ${shellQuote(file + '.rc')} || echo $? > ${shellQuote(file + '.rc')}`);
    });
  });
  parts.push(`echo done > ${shellQuote(join(out, 'current'))}`);
  return parts.join('\n') + '\n';
}

describe('documentation blocks', () => {
  it('ok/extracts sh and console blocks, reads the not-run annotation, splits console steps', () => {
    const md = ['text', '```sh', '# not run here: needs a real host', 'ssh db1', '```', '```yaml', 'a: 1', '```', '```console', '$ echo a \\', '  b', 'a b', '$ true', '```'].join('\n');
    const blocks = extractBlocks('x.md', md);
    expect(blocks.map((b) => [b.lang, b.line, b.notRun])).toEqual([
      ['sh', 2, 'needs a real host'],
      ['console', 9, undefined],
    ]);
    expect(consoleSteps(blocks[1].text)).toEqual([
      { command: 'echo a \\\n  b', expected: ['a b'] },
      { command: 'true', expected: [] },
    ]);
  });

  it('ok/the documentation has examples, and only a few are not run', () => {
    const all = [...DOCS.values()].flat();
    const notRun = all.filter((b) => b.notRun);
    expect(all.length).toBeGreaterThan(15);
    expect(notRun.length, notRun.map((b) => `${b.file}:${b.line} ${b.notRun}`).join('\n')).toBeLessThanOrEqual(Math.ceil(all.length / 3));
  });

  it('fail/no link leaves the repository, and every link resolves', () => {
    for (const file of DOCS.keys()) {
      const text = readFileSync(join(REPO, file), 'utf8');
      for (const [, link] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        expect(link, `${file}: ${link} points outside the repository`).not.toMatch(/^[a-z][a-z0-9+.-]*:|^\/\//i);
        if (link.startsWith('#')) continue;
        const target = resolve(REPO, dirname(file), link.split('#')[0]);
        expect(target.startsWith(REPO + sep), `${file}: ${link} points outside the repository`).toBe(true);
        expect(existsSync(target), `${file}: ${link} does not exist`).toBe(true);
      }
    }
  });
});

describeWithTools(['ssh', 'sshd', 'ssh-keygen', 'ssh-agent', 'ssh-add'], 'documentation examples run as written', () => {
  const startLoopbackSshd = async (caLines: string): Promise<Sshd> => {
    // Every principal the shipped targets can get, accepted for the local account.
    const policy = parseDocument(readFileSync(join(REPO, 'config/policy.yaml'), 'utf8')).toJS() as {
      targets: Record<string, { accounts: string[] }>;
    };
    const principals = Object.entries(policy.targets).flatMap(([t, v]) => v.accounts.map((a) => `${a}@${t}`));
    return startSshd({ trustedCaKeys: caLines, principalsFor: { [userInfo().username]: principals } });
  };

  for (const [file, blocks] of DOCS) {
    if (!blocks.some((b) => !b.notRun)) continue;
    it(`ok/${file}`, async () => {
      const sb = await makeSandbox(startLoopbackSshd);
      try {
        const out = join(sb.dir, 'out');
        mkdirSync(out);
        writeFileSync(join(out, 'script.sh'), scriptFor(blocks, out, sb.address));
        const r = spawnSync('bash', [join(out, 'script.sh')], {
          env: { ...sb.env, SANDBOX_DIR: sb.dir },
          encoding: 'utf8',
          timeout: 120_000,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const current = readFileSync(join(out, 'current'), 'utf8').trim();
        const failed = current === 'done' ? undefined : blocks[Number(current)];
        expect(
          r.status === 0 && !failed ? '' : `${file}:${failed?.line ?? '?'} failed (exit ${r.status}):\n${failed?.text ?? ''}\n--- output ---\n${r.stdout}\n${r.stderr}`,
        ).toBe('');
        blocks.forEach((b, i) => {
          if (b.lang !== 'console' || b.notRun) return;
          consoleSteps(b.text).forEach((s, j) => {
            const got = readFileSync(join(out, `${i}.${j}`), 'utf8').replace(/\n$/, '');
            const rc = readFileSync(join(out, `${i}.${j}.rc`), 'utf8').trim();
            const expectsError = s.expected.some((l) => l.startsWith('error:'));
            expect(rc === '0' || expectsError ? 'ok' : `${file}:${b.line} $ ${s.command} exited ${rc}:\n${got}`).toBe('ok');
            if (s.expected.length === 0) return;
            expect(normalizeOutput(got, sb.home, sb.dir), `${file}:${b.line} $ ${s.command} printed:\n${got}\n`).toBe(normalizeOutput(s.expected.join('\n'), sb.home, sb.dir));
          });
        });
      } finally {
        await sb.stop();
      }
    }, 180_000);
  }
});
