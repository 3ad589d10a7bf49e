/**
 * Issue 10.6: every command that reads the audit log streams it. The log here is bigger than
 * V8's longest string (~512 MiB, where reading it whole used to fail and leave a CA key trusted)
 * and over ten times the heap the commands get; `ca retire`, `audit verify` and the daemon's
 * start-up replay must all still work. Few large records keep building it fast.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { canonicalJson, GENESIS_HASH } from '../../src/store/audit.js';
import { makeEnv, REPO, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';

const BIN = join(REPO, 'dist/cli/jit-sshd.js');
/** The heap each command gets; the log is > 10× bigger. */
const HEAP_MB = 48;
const PAD = 1 << 20;
const STRING_LIMIT = 2 ** 29 - 24; // V8's maximum string length on 64-bit
const PAD_RECORDS = 530;

describeWithTools(['ssh-keygen'], 'audit log bigger than the string limit, commands under a small heap', () => {
  let env: TestEnv;
  let auditFile: string;
  let keep: string; // trusted key with a certificate still valid (at the very end of the log)
  let done: string; // trusted key whose certificates all expired
  let records = 0;

  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, [`--max-old-space-size=${HEAP_MB}`, BIN, ...args, '--config', env.configPath], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  beforeAll(() => {
    env = makeEnv();
    for (const args of [['init'], ['ca', 'rotate'], ['ca', 'rotate']]) {
      execFileSync(process.execPath, [BIN, ...args, '--config', env.configPath]);
    }
    const keys = JSON.parse(execFileSync(process.execPath, [BIN, 'ca', 'show', '--json', '--config', env.configPath], { encoding: 'utf8' }));
    [keep, done] = keys.filter((k: { status: string }) => k.status === 'trusted').map((k: { fingerprint: string }) => k.fingerprint);

    auditFile = join(env.dataDir, 'audit.jsonl');
    const fd = openSync(auditFile, 'w', 0o600);
    let prev = GENESIS_HASH;
    const nowSec = Math.floor(Date.now() / 1000);
    const write = (event: Record<string, unknown>) => {
      records++;
      const body = { seq: records, time: new Date().toISOString(), ...event, prevHash: prev };
      const canonical = canonicalJson(body);
      prev = createHash('sha256').update(prev + canonical).digest('hex');
      writeSync(fd, `${canonical.slice(0, -1)},"hash":"${prev}"}\n`);
    };
    write({ type: 'issue', id: 'old', ca: done, validBefore: nowSec - 60 });
    const pad = 'x'.repeat(PAD);
    for (let i = 0; i < PAD_RECORDS; i++) write({ type: 'test_padding', pad });
    // The only live certificate of `keep` is recorded past the string limit.
    write({ type: 'issue', id: 'live', ca: keep, validBefore: nowSec + 3600 });
    closeSync(fd);
  }, 120_000);
  afterAll(() => env?.cleanup());

  it('the log is larger than the longest string V8 can make', () => {
    expect(statSync(auditFile).size).toBeGreaterThan(STRING_LIMIT);
    expect(statSync(auditFile).size).toBeGreaterThan(10 * HEAP_MB * 2 ** 20);
  });

  it('ca retire reads to the end: refuses the key with a live certificate, retires the other', () => {
    const refused = cli(['ca', 'retire', keep]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/valid until \d{4}-\d\d-\d\dT/);
    expect(refused.stderr).not.toMatch(/string longer|heap/i);
    const ok = cli(['ca', 'retire', done]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`retired ${done.replace(/[+/]/g, '\\$&')}`));
  }, 240_000);

  it('the daemon starts on it (replay streams) and audit verify passes, anchored by the checkpoint written at start', async () => {
    const config = join(env.dir, 'big.yaml');
    writeFileSync(config, `listen: 127.0.0.1:0\ndataDir: ${env.dataDir}\npolicy: ${env.policyPath}\nlogLevel: info\n`);
    const p = spawn(process.execPath, [`--max-old-space-size=${HEAP_MB}`, BIN, 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
    const listening = await Promise.race([
      new Promise<boolean>((r) => {
        const ready = () => out.includes('jit-sshd listening') && out.includes('"msg":"audit checkpoint"');
        const t = setInterval(() => ready() && (clearInterval(t), r(true)), 50);
      }),
      exited.then(() => false),
    ]);
    expect(listening, out.slice(-2000)).toBe(true);
    p.kill('SIGTERM');
    await exited;

    const v = cli(['audit', 'verify']);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(new RegExp(`^audit chain ok: ${records} records.*anchored by 1 signed checkpoint`));
  }, 240_000);
});
