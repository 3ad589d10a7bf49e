/**
 * Disk trouble: the audit log's file operations fail (disk full on write, I/O error on sync, a
 * half-written batch, a read-only file system on reopen). Issuance must answer 503 and hand out
 * no certificate, leave no trace of the failed records in the chain, and recover by itself once
 * the disk is healthy again. Tests run as root, so chmod cannot make the file unwritable: the
 * daemon's audit file operations are wrapped instead (startDaemon's test-only auditFs option).
 */
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../../src/daemon.js';
import { nodeAuditFileOps, verifyAuditFile, type AuditFileOps } from '../../src/store/audit.js';
import { join } from 'node:path';
import { api, makeEnv, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';
import { captureLog, expectNoSecrets, freshPublicLine, issueRecords, readAudit, staticTokens, type Tokens } from './support.js';

type Fault = 'ENOSPC' | 'EIO' | 'EROFS' | 'EDQUOT';

const faults: { write?: Fault; partialWrite?: Fault; sync?: Fault; open?: Fault } = {};
let syncs = 0;

function fsError(code: Fault): NodeJS.ErrnoException {
  const e = new Error(`${code}: simulated`) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

/** The real file operations, failing on demand. */
const faultyFs: AuditFileOps = {
  async openAppend(file) {
    if (faults.open) throw fsError(faults.open);
    const fh = await nodeAuditFileOps.openAppend(file);
    return {
      async write(buf, offset, length) {
        if (faults.write) throw fsError(faults.write);
        if (faults.partialWrite) {
          // Half the batch reaches the file, then the disk is full.
          const half = Math.max(1, Math.floor(length / 2));
          await fh.write(buf, offset, half);
          throw fsError(faults.partialWrite);
        }
        return fh.write(buf, offset, length);
      },
      async datasync() {
        syncs++;
        if (faults.sync) throw fsError(faults.sync);
        return fh.datasync();
      },
      truncate: (len) => fh.truncate(len),
      close: () => fh.close(),
    };
  },
};

describeWithTools(['ssh-keygen'], 'reliability: audit log on a failing disk', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let tokens: Tokens;
  const capture = captureLog();
  const key = freshPublicLine('disk@rel');

  const issue = (user = 'alice') =>
    api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: key }, tokens.byUser[user]);

  const expectRefused = (r: { status: number; body: any }) => {
    expect(r.status).toBe(503);
    expect(r.body.error.code).toBe('unavailable');
    expect(JSON.stringify(r.body)).not.toMatch(/cert-v01@openssh\.com|"certificate"/);
  };

  beforeAll(async () => {
    tokens = staticTokens(['alice', 'bob', 'dave']);
    env = makeEnv({ tokens: tokens.yaml });
    d = await startDaemon({ configPath: env.configPath, log: capture.log, auditFs: faultyFs });
  });
  afterAll(async () => {
    for (const k of Object.keys(faults)) delete faults[k as keyof typeof faults];
    await d?.close();
    env?.cleanup();
  });
  beforeEach(() => {
    for (const k of Object.keys(faults)) delete faults[k as keyof typeof faults];
  });

  it('ok/a healthy disk issues (the baseline the faults are measured against)', async () => {
    const r = await issue();
    expect(r.status).toBe(201);
    expect(issueRecords(env.dataDir).map((x) => x.serial)).toContain(r.body.serial);
  });

  for (const [name, set] of [
    ['disk full on write (ENOSPC)', () => (faults.write = 'ENOSPC')],
    ['quota exceeded on write (EDQUOT)', () => (faults.write = 'EDQUOT')],
    ['half a batch written, then disk full', () => (faults.partialWrite = 'ENOSPC')],
    ['I/O error on fdatasync (EIO)', () => (faults.sync = 'EIO')],
  ] as const) {
    it(`fail/${name} → 503, no certificate, no trace in the chain; recovers when fixed`, async () => {
      const issuedBefore = issueRecords(env.dataDir).length;
      const seqBefore = readAudit(env.dataDir).length;
      set();
      // Several at once: a whole group-commit batch fails together.
      const refused = await Promise.all(['alice', 'alice', 'dave', 'alice'].map((u) => (u === 'dave' ? issueAs('dave') : issue(u))));
      for (const r of refused) expectRefused(r);
      expect(issueRecords(env.dataDir).length).toBe(issuedBefore);
      expect(readAudit(env.dataDir).length).toBe(seqBefore);
      expect((await fetch(`${d.url}/healthz`)).status).toBe(200);

      delete faults.write;
      delete faults.partialWrite;
      delete faults.sync;
      const ok = await issue();
      expect(ok.status).toBe(201);
      const v = await verifyAuditFile(join(env.dataDir, 'audit.jsonl'));
      expect(v.ok).toBe(true);
      const recs = readAudit(env.dataDir);
      expect(recs.length).toBe(seqBefore + 1);
      expect(recs.at(-1)?.serial).toBe(ok.body.serial);
    });
  }

  const issueAs = (user: string) =>
    api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'incident', ticket: 'INC-7', publicKey: key }, tokens.byUser[user]);

  it('fail/file cannot even be reopened (EROFS) → 503 until the file system is writable again', async () => {
    faults.sync = 'EIO'; // the first failure drops the handle …
    faults.open = 'EROFS'; // … and reopening it fails too
    expectRefused(await issue());
    delete faults.sync;
    expectRefused(await issue());
    expectRefused(await issue());
    delete faults.open;
    const ok = await issue();
    expect(ok.status).toBe(201);
    expect((await verifyAuditFile(join(env.dataDir, 'audit.jsonl'))).ok).toBe(true);
  });

  it('fail/an approval while the audit is down → 503, stays pending, issues after recovery', async () => {
    const pending = await issueAs('dave');
    expect(pending.status).toBe(202);
    const issuedBefore = issueRecords(env.dataDir).length;
    faults.write = 'ENOSPC';
    const refused = await api(d.url, 'POST', `/v1/requests/${pending.body.id}/approve`, {}, tokens.byUser.bob);
    expectRefused(refused);
    delete faults.write;
    const view = await api(d.url, 'GET', `/v1/requests/${pending.body.id}`, undefined, tokens.byUser.dave);
    expect(view.body.status).toBe('pending');
    expect(view.body.certificate).toBeUndefined();
    expect(issueRecords(env.dataDir).length).toBe(issuedBefore);
    const approved = await api(d.url, 'POST', `/v1/requests/${pending.body.id}/approve`, {}, tokens.byUser.bob);
    expect(approved.status).toBe(200);
    expect(approved.body.status).toBe('issued');
    expect(issueRecords(env.dataDir).map((x) => x.id)).toContain(pending.body.id);
  });

  it('every append was fdatasync\'ed (the faults were really on the durable path)', () => {
    expect(syncs).toBeGreaterThan(5);
  });

  it('secrets: the log and the audit hold no private key, token or signature', () => {
    expectNoSecrets(
      { log: capture.text(), 'audit.jsonl': readAudit(env.dataDir).map((r) => JSON.stringify(r)).join('\n') },
      Object.values(tokens.byUser),
    );
  });
});
