/**
 * Issue 11.6, audit tamper: the attacks run against a real daemon's data dir and the built
 * `jit-sshd audit verify`. Cutting the last records and rewriting a record with the chain
 * recomputed both pass a plain chain check; signed checkpoints (and, against someone who holds
 * the box and its checkpoint key, a head or checkpoints kept elsewhere) catch them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDaemon } from '../../src/daemon.js';
import { canonicalJson, GENESIS_HASH, verifyAuditFile } from '../../src/store/audit.js';
import {
  CHECKPOINT_FILES,
  checkpointMessage,
  openCheckpointKey,
  parseCheckpointLine,
  signCheckpoint,
} from '../../src/store/audit-checkpoints.js';
import { makeEnv, REPO, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';
import { createHash } from 'node:crypto';

const BIN = join(REPO, 'dist/cli/jit-sshd.js');
const RECORDS = 23;
const EVERY = 5;

describeWithTools(['ssh-keygen', 'openssl'], 'audit checkpoints: truncation and rewrite are detected', () => {
  let env: TestEnv;
  let auditFile: string;
  let cpFile: string;
  let original: string;
  let originalCps: string;
  let shipped: string;
  let head: { seq: number; hash: string };

  const verify = (...extra: string[]) => {
    const r = spawnSync(process.execPath, [BIN, 'audit', 'verify', '--config', env.configPath, ...extra], { encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const restore = () => {
    writeFileSync(auditFile, original);
    writeFileSync(cpFile, originalCps);
  };
  const start = (logLines?: string[]) =>
    startDaemon({
      configPath: env.configPath,
      log: logLines
        ? pino({ level: 'info' }, new Writable({ write: (c, _e, cb) => (logLines.push(...String(c).split('\n').filter(Boolean)), cb()) }))
        : pino({ level: 'silent' }),
    });

  /** The attack: change one record, then recompute every hash after it so the chain is whole again. */
  const rewriteAndRecompute = (seq: number) => {
    let prev = GENESIS_HASH;
    const out = original
      .trim()
      .split('\n')
      .map((l) => {
        const { hash: _old, ...r } = JSON.parse(l);
        if (r.seq === seq) r.n = 999;
        r.prevHash = prev;
        prev = createHash('sha256').update(prev + canonicalJson(r)).digest('hex');
        return JSON.stringify({ ...r, hash: prev });
      });
    writeFileSync(auditFile, out.join('\n') + '\n');
    return prev;
  };

  beforeAll(async () => {
    env = makeEnv({ config: `auditCheckpoints: { everyRecords: ${EVERY}, interval: 1h }\n` });
    auditFile = join(env.dataDir, 'audit.jsonl');
    cpFile = join(env.dataDir, CHECKPOINT_FILES.log);
    const logLines: string[] = [];
    const d = await start(logLines);
    for (let n = 1; n <= RECORDS; n++) await d.deps.audit.append({ type: 'test_event', n });
    head = d.deps.audit.head();
    await d.close();
    original = readFileSync(auditFile, 'utf8');
    originalCps = readFileSync(cpFile, 'utf8');
    // What syslog or a log shipper would hold: the daemon's own log lines.
    shipped = join(env.dir, 'shipped.log');
    writeFileSync(shipped, logLines.join('\n') + '\n');
  });
  afterAll(() => env?.cleanup());

  it('checkpoints are periodic (not per record), signed by a 0600 key that is not the CA key, and openssl verifies them', () => {
    const cps = originalCps.trim().split('\n').map((l) => parseCheckpointLine(l)!);
    const seqs = cps.map((c) => c.seq);
    expect(seqs.at(-1)).toBe(RECORDS); // the shutdown checkpoint
    expect(seqs.length).toBeGreaterThanOrEqual(Math.floor(RECORDS / EVERY));
    expect(seqs.length).toBeLessThan(RECORDS / 2);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(cps.at(-1)!.hash).toBe(head.hash);

    const keyFile = join(env.dataDir, CHECKPOINT_FILES.key);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const pub = readFileSync(join(env.dataDir, CHECKPOINT_FILES.pub), 'utf8').trim();
    expect(execFileSync('ssh-keygen', ['-y', '-f', keyFile], { encoding: 'utf8' }).split(' ').slice(0, 2)).toEqual(pub.split(' ').slice(0, 2));
    const caLines = readFileSync(join(env.dataDir, 'ca/keyring.json'), 'utf8');
    expect(caLines).not.toContain(pub.split(' ')[1]);

    // Checkable off the box with a stock tool: the PEM is the same key as the .pub, openssl checks the signature.
    const c = cps.at(-1)!;
    const pem = join(env.dataDir, CHECKPOINT_FILES.pem);
    const raw = execFileSync('openssl', ['pkey', '-pubin', '-in', pem, '-outform', 'DER']).subarray(-32);
    expect(raw.toString('base64')).toBe(Buffer.from(pub.split(' ')[1], 'base64').subarray(-32).toString('base64'));
    const sigFile = join(env.dir, 'cp.sig');
    writeFileSync(sigFile, Buffer.from(c.sig, 'base64'));
    const opensslVerify = (msg: Buffer) => {
      const msgFile = join(env.dir, 'cp.msg');
      writeFileSync(msgFile, msg);
      return spawnSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', pem, '-rawin', '-in', msgFile, '-sigfile', sigFile], { encoding: 'utf8' });
    };
    const good = opensslVerify(checkpointMessage(c));
    expect(good.status, good.stderr).toBe(0);
    expect(good.stdout).toMatch(/Signature Verified Successfully/);
    expect(opensslVerify(checkpointMessage({ ...c, seq: c.seq + 1 })).status).not.toBe(0);
  });

  it('an intact log passes, with the head and the shipped checkpoints as outside anchors', () => {
    restore();
    const r = verify('--expect-head', `${head.seq}:${head.hash}`, '--checkpoint', shipped);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^audit chain ok: ${RECORDS} records.*anchored by \\d+ signed checkpoint`));
  });

  it('cutting the last records fails verify with a sentence, and the daemon refuses to start', async () => {
    restore();
    const lines = original.trim().split('\n');
    writeFileSync(auditFile, lines.slice(0, -3).join('\n') + '\n');
    expect((await verifyAuditFile(auditFile)).ok).toBe(true); // the chain alone cannot tell
    const r = verify();
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(`the log ends at seq ${RECORDS - 3}, but the checkpoint signed at`);
    expect(r.stderr).toMatch(/cut off \(truncated\)/);
    expect(r.stderr.trim().startsWith('{')).toBe(false);
    await expect(start()).rejects.toThrow(/refusing to start: the audit log ends at seq 20.*cut off/);
    // …and the refused start wrote nothing: the evidence is as the attacker left it.
    expect(readFileSync(cpFile, 'utf8')).toBe(originalCps);
    restore();
  });

  it('rewriting a record and recomputing the chain fails verify', () => {
    rewriteAndRecompute(3);
    expect(readFileSync(auditFile, 'utf8')).not.toBe(original);
    const r = verify();
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`record seq ${EVERY} has hash .* but the checkpoint signed at .* says .*rewritten at or before seq ${EVERY}`));
    restore();
  });

  it('someone holding the box re-signs the checkpoints too: the head or checkpoints kept elsewhere still catch it', async () => {
    const newHead = rewriteAndRecompute(3);
    // Re-sign every checkpoint for the forged chain with the box's own checkpoint key.
    const key = openCheckpointKey(env.dataDir);
    const forged = original.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; hash: string });
    const rewritten = readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { seq: number; hash: string });
    const cps = [];
    for (const c of originalCps.trim().split('\n').map((l) => parseCheckpointLine(l)!)) {
      cps.push(signCheckpoint(key, { seq: c.seq, hash: rewritten[c.seq - 1].hash }, new Date(c.time)));
    }
    writeFileSync(cpFile, cps.map((c) => JSON.stringify(c)).join('\n') + '\n');
    expect(forged.length).toBe(RECORDS);
    expect(newHead).not.toBe(head.hash);
    expect(verify().code).toBe(0); // the box alone cannot tell: that is why heads are shipped

    const byHead = verify('--expect-head', `${head.seq}:${head.hash}`);
    expect(byHead.code).not.toBe(0);
    expect(byHead.stderr).toMatch(new RegExp(`record seq ${RECORDS} has hash .* but --expect-head ${RECORDS} says`));
    const byShipped = verify('--checkpoint', shipped);
    expect(byShipped.code).not.toBe(0);
    expect(byShipped.stderr).toMatch(/but the checkpoint from .*shipped\.log:\d+ signed at .* says .*rewritten/);
    restore();
  });

  it('a checkpoint line torn by a crash is cut on the next start; verify then passes', async () => {
    restore();
    appendFileSync(cpFile, '{"seq":99,"hash":"ab');
    const d = await start();
    await d.deps.audit.append({ type: 'test_event', n: 24 });
    await d.close();
    const r = verify();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/audit chain ok: 24 records/);
    // The new data is the test's from here on.
    original = readFileSync(auditFile, 'utf8');
    originalCps = readFileSync(cpFile, 'utf8');
    copyFileSync(cpFile, join(env.dir, 'cp-after-crash.jsonl'));
  });
});

describeWithTools(['ssh-keygen'], 'audit checkpoints: shipped to syslog when enabled', () => {
  it('with syslog: true every checkpoint goes to `logger -p auth.notice`, and those lines anchor verify', async () => {
    const env = makeEnv({ config: 'auditCheckpoints: { everyRecords: 2, interval: 1h, syslog: true }\n' });
    // A stand-in logger on PATH records what would reach syslog.
    const bin = join(env.dir, 'bin');
    const sent = join(env.dir, 'syslog.txt');
    mkdirSync(bin);
    writeFileSync(join(bin, 'logger'), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${sent}'\n`, { mode: 0o755 });
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      const d = await startDaemon({ configPath: env.configPath, log: pino({ level: 'silent' }) });
      for (let n = 1; n <= 5; n++) await d.deps.audit.append({ type: 'test_event', n });
      await d.close();
      await new Promise((r) => setTimeout(r, 300)); // logger runs detached
      const lines = readFileSync(sent, 'utf8').trim().split('\n');
      expect(lines[0]).toMatch(/^-t jit-sshd -p auth\.notice -- audit checkpoint \{"seq":/);
      expect(lines.map((l) => parseCheckpointLine(l)?.seq).at(-1)).toBe(5);
      // Cut the log back to seq 3: the syslog copy proves seq 5 existed, even with the local checkpoints gone too.
      const auditFile = join(env.dataDir, 'audit.jsonl');
      writeFileSync(auditFile, readFileSync(auditFile, 'utf8').trim().split('\n').slice(0, 3).join('\n') + '\n');
      writeFileSync(join(env.dataDir, CHECKPOINT_FILES.log), '');
      const r = spawnSync(process.execPath, [BIN, 'audit', 'verify', '--config', env.configPath, '--checkpoint', sent], { encoding: 'utf8' });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/the log ends at seq 3, but the checkpoint from .*syslog\.txt:\d+ signed at .* says seq 5 existed/);
    } finally {
      process.env.PATH = path;
      env.cleanup();
    }
  });
});
