/**
 * `jit-sshd store migrate --to postgres://…` from an embedded data dir with history (issued,
 * revoked, pending, denied, a revoked key): the chain is intact and verifies from the database,
 * the KRL and live grants are the same, and serials continue above the old ones.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, makeEnv, REPO, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { describeWithPostgres, freshDatabase, type TestDatabase } from '../helpers/pg.js';
import { freshPublicLine, staticTokens, type Tokens } from '../reliability/support.js';

const cli = (args: string[]) => execFileSync(process.execPath, [join(REPO, 'dist/cli/jit-sshd.js'), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describeWithPostgres('store migrate: embedded data dir → PostgreSQL', () => {
  let env: TestEnv;
  let db: TestDatabase;
  let tokens: Tokens;
  let pgConfig: string;
  const certs: { id: string; serial: string; file: string }[] = [];
  let revokedSerial = '';
  let pendingId = '';
  let before: { krlVersion: number; requests: Record<string, string>; head: { seq: number; hash: string }; maxSerial: bigint };
  let migrated: { auditRecords: number; head: { seq: number; hash: string } };

  const revokedStates = (krl: Buffer) => {
    const krlFile = join(env.dir, `krl-${Math.random()}.bin`);
    writeFileSync(krlFile, krl);
    return certs.map((c) => {
      try {
        execFileSync('ssh-keygen', ['-Q', '-f', krlFile, c.file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        return 'ok';
      } catch (e) {
        return String((e as { stdout?: string }).stdout).includes('REVOKED') ? 'revoked' : 'error';
      }
    });
  };

  beforeAll(async () => {
    db = await freshDatabase();
    tokens = staticTokens(['alice', 'bob', 'erin']);
    env = makeEnv({ users: { alice: ['sre', 'oncall'], bob: ['sre-leads'], erin: ['admins', 'auditors'] }, tokens: tokens.yaml, config: 'adminGroups: [admins]\nauditorGroups: [auditors]\n' });
    const d = await startTestDaemon(env);
    try {
      for (let i = 0; i < 4; i++) {
        const r = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: freshPublicLine() }, tokens.byUser.alice);
        expect(r.status).toBe(201);
        const file = join(env.dir, `cert${i}.pub`);
        writeFileSync(file, r.body.certificate + '\n');
        certs.push({ id: r.body.id, serial: r.body.serial, file });
      }
      revokedSerial = certs[1].serial;
      expect((await api(d.url, 'POST', '/v1/revocations', { serial: revokedSerial, reason: 'lost' }, tokens.byUser.erin)).status).toBe(200);
      const blob = Buffer.from(freshPublicLine().split(' ')[1], 'base64');
      const fingerprint = 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
      expect((await api(d.url, 'POST', '/v1/revocations', { fingerprint, reason: 'leaked' }, tokens.byUser.erin)).status).toBe(200);
      const pending = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'incident', ticket: 'INC-1', publicKey: freshPublicLine() }, tokens.byUser.alice);
      expect(pending.status).toBe(202);
      pendingId = pending.body.id;
      const denied = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'incident', ticket: 'INC-2', publicKey: freshPublicLine() }, tokens.byUser.alice);
      expect((await api(d.url, 'POST', `/v1/requests/${denied.body.id}/deny`, { reason: 'no' }, tokens.byUser.bob)).status).toBe(200);
      const krl = await fetch(`${d.url}/v1/krl`);
      const list = await api(d.url, 'GET', '/v1/requests', undefined, tokens.byUser.erin);
      before = {
        krlVersion: Number(krl.headers.get('x-krl-version')),
        requests: Object.fromEntries(list.body.requests.map((r: { id: string; status: string }) => [r.id, r.status])),
        head: d.deps.audit.head(),
        maxSerial: certs.map((c) => BigInt(c.serial)).reduce((a, b) => (a > b ? a : b)),
      };
      expect(revokedStates(Buffer.from(await krl.arrayBuffer()))).toEqual(['ok', 'revoked', 'ok', 'ok']);
    } finally {
      await d.close();
    }
    migrated = JSON.parse(cli(['store', 'migrate', '--config', env.configPath, '--to', db.url, '--json']));
    pgConfig = join(env.dir, 'pg.yaml');
    writeFileSync(pgConfig, readFileSync(env.configPath, 'utf8') + `store: { type: postgres, url: "${db.url}" }\n`);
  }, 60_000);

  afterAll(async () => {
    await db?.drop();
    env?.cleanup();
  });

  it('ok/copies the whole chain; audit verify passes reading the database, with the data dir’s checkpoints', () => {
    expect(migrated.auditRecords).toBe(before.head.seq);
    expect(migrated.head).toEqual(before.head);
    const v = JSON.parse(cli(['audit', 'verify', '--config', pgConfig, '--json']));
    expect(v).toMatchObject({ ok: true, records: before.head.seq, lastHash: before.head.hash });
    expect(v.checkpoints).toBeGreaterThan(0); // the embedded daemon's checkpoints anchor the copied chain
  });

  it('ok/refuses a database that already holds data', () => {
    expect(() => cli(['store', 'migrate', '--config', env.configPath, '--to', db.url])).toThrow(/already holds jit-ssh data/);
  });

  it('ok/on PostgreSQL: same KRL (version and revoked set), same requests, pending approvable, serials continue', async () => {
    const { startDaemon } = await import('../../src/daemon.js');
    const { pino } = await import('pino');
    const d = await startDaemon({ configPath: pgConfig, log: pino({ level: 'silent' }) });
    try {
      const krl = await fetch(`${d.url}/v1/krl`);
      expect(Number(krl.headers.get('x-krl-version'))).toBe(before.krlVersion);
      expect(revokedStates(Buffer.from(await krl.arrayBuffer()))).toEqual(['ok', 'revoked', 'ok', 'ok']);
      const list = await api(d.url, 'GET', '/v1/requests', undefined, tokens.byUser.erin);
      expect(Object.fromEntries(list.body.requests.map((r: { id: string; status: string }) => [r.id, r.status]))).toEqual(before.requests);
      const approved = await api(d.url, 'POST', `/v1/requests/${pendingId}/approve`, {}, tokens.byUser.bob);
      expect(approved.status).toBe(200);
      expect(BigInt(approved.body.serial)).toBeGreaterThan(before.maxSerial);
      const fresh = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: freshPublicLine() }, tokens.byUser.alice);
      expect(fresh.status).toBe(201);
      expect(BigInt(fresh.body.serial)).toBeGreaterThan(before.maxSerial);
      // Revoking a migrated grant by serial works (its row came from the audit's issue record).
      expect((await api(d.url, 'POST', '/v1/revocations', { serial: certs[2].serial }, tokens.byUser.erin)).status).toBe(200);
      const krl2 = await fetch(`${d.url}/v1/krl`);
      expect(revokedStates(Buffer.from(await krl2.arrayBuffer()))).toEqual(['ok', 'revoked', 'revoked', 'ok']);
    } finally {
      await d.close();
    }
    expect(JSON.parse(cli(['audit', 'verify', '--config', pgConfig, '--json'])).ok).toBe(true);
  }, 30_000);
});
