/**
 * Three jit-sshd replicas (separate processes) on one PostgreSQL database, as behind a load
 * balancer that sends each call anywhere: logins, tokens, requests, approvals, revocations and
 * serials must behave as one service, and the audit must stay one verifiable chain.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseCertificate } from '../../src/ca/cert.js';
import { api, DEFAULT_RULES, makeEnv, REPO, sshKeygenSign, type TestEnv } from '../helpers/daemon.js';
import { describeWithPostgres, freshDatabase, type TestDatabase } from '../helpers/pg.js';
import { replicaSet, type ReplicaSet } from '../helpers/replicas.js';
import { driveIssuance, freshPublicLine, staticTokens, type Tokens } from './support.js';

const CLIENTS = 32;

describeWithPostgres('replicas: three daemons, one database', () => {
  let env: TestEnv;
  let db: TestDatabase;
  let set: ReplicaSet;
  let tokens: Tokens;
  let sql: pg.Pool;
  const users = Array.from({ length: CLIENTS }, (_, i) => `eng${i}`);
  const url = (i: number) => set.replicas[i].url;

  beforeAll(async () => {
    db = await freshDatabase();
    tokens = staticTokens([...users, 'alice', 'bob', 'carol', 'erin']);
    env = makeEnv({
      users: { ...Object.fromEntries(users.map((u) => [u, ['oncall']])), alice: ['sre', 'oncall'], bob: ['sre-leads'], carol: ['sre-leads'], erin: ['admins', 'auditors'] },
      tokens: tokens.yaml,
      config: 'adminGroups: [admins]\nauditorGroups: [auditors]\n',
    });
    void DEFAULT_RULES;
    set = await replicaSet(env, 3, db.url);
    // Start one first (it migrates), then two at once.
    await set.start(0);
    await Promise.all([set.start(1), set.start(2)]);
    sql = new pg.Pool({ connectionString: db.url, max: 2 });
  }, 60_000);

  afterAll(async () => {
    await set?.stopAll();
    await sql?.end();
    await db?.drop();
    env?.cleanup();
  });

  const issueRecord = async (serial: string) =>
    (await sql.query<{ line: string }>(`SELECT line FROM audit_records WHERE line::jsonb->>'type' = 'issue' AND line::jsonb->>'serial' = $1`, [serial])).rows;

  it('ok/a challenge from A is answered on B; the token works on C; the challenge is then used up everywhere', async () => {
    const ch = await api(url(0), 'POST', '/v1/auth/challenge', { user: 'alice' });
    expect(ch.status).toBe(200);
    const signature = sshKeygenSign(env.keys.alice.path, ch.body.challenge);
    const tok = await api(url(1), 'POST', '/v1/auth/token', { user: 'alice', challenge: ch.body.challenge, signature });
    expect(tok.status).toBe(200);
    const onC = await api(url(2), 'GET', '/v1/targets', undefined, tok.body.token);
    expect(onC.status).toBe(200);
    const replay = await api(url(2), 'POST', '/v1/auth/token', { user: 'alice', challenge: ch.body.challenge, signature });
    expect(replay.status).toBe(401);
    // Ending alice's sessions on one replica ends them on all.
    const rev = await api(url(0), 'POST', '/v1/revocations', { user: 'alice', reason: 'test' }, tokens.byUser.erin);
    expect(rev.status).toBe(200);
    expect((await api(url(1), 'GET', '/v1/targets', undefined, tok.body.token)).status).toBe(401);
  });

  it('ok/a request made on A is approved on B and collected on C', async () => {
    const made = await api(url(0), 'POST', '/v1/requests', { target: 'prod-db', task: 'incident', ticket: 'INC-7', publicKey: freshPublicLine() }, tokens.byUser.alice);
    expect(made.status).toBe(202);
    const approved = await api(url(1), 'POST', `/v1/requests/${made.body.id}/approve`, { comment: 'ok' }, tokens.byUser.bob);
    expect(approved.status).toBe(200);
    const got = await api(url(2), 'GET', `/v1/requests/${made.body.id}`, undefined, tokens.byUser.alice);
    expect(got.status).toBe(200);
    expect(got.body.status).toBe('issued');
    const cert = parseCertificate(got.body.certificate);
    expect(String(cert.serial)).toBe(got.body.serial);
    expect(await issueRecord(got.body.serial)).toHaveLength(1);
  });

  it('ok/a revocation on B is in A’s KRL within 1 s; ETag and X-KRL-Version only grow across replicas', async () => {
    const issued = await api(url(0), 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: freshPublicLine() }, tokens.byUser.alice);
    expect(issued.status).toBe(201);
    const certFile = join(env.dir, 'revoke-me-cert.pub');
    writeFileSync(certFile, issued.body.certificate + '\n');
    const before = await fetch(`${url(0)}/v1/krl`);
    const v0 = Number(before.headers.get('x-krl-version'));
    const rev = await api(url(1), 'POST', '/v1/revocations', { serial: issued.body.serial, reason: 'lost laptop' }, tokens.byUser.erin);
    expect(rev.status).toBe(200);
    const t0 = Date.now();
    let seenMs = -1;
    const versions: number[] = [];
    while (Date.now() - t0 < 3000) {
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${url(i)}/v1/krl`);
        versions.push(Number(res.headers.get('x-krl-version')));
        if (i !== 0) continue;
        const krlFile = join(env.dir, 'krl.bin');
        writeFileSync(krlFile, Buffer.from(await res.arrayBuffer()));
        let out = '';
        try {
          execFileSync('ssh-keygen', ['-Q', '-f', krlFile, certFile], { encoding: 'utf8' });
        } catch (e) {
          out = String((e as { stdout?: string }).stdout);
        }
        if (out.includes('REVOKED') && seenMs < 0) seenMs = Date.now() - t0;
      }
      if (seenMs >= 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(seenMs).toBeGreaterThanOrEqual(0);
    expect(seenMs).toBeLessThanOrEqual(1000);
    expect(versions.every((v) => v > v0)).toBe(true);
    const etags = await Promise.all([0, 1, 2].map(async (i) => (await fetch(`${url(i)}/v1/krl`)).headers.get('etag')));
    expect(new Set(etags).size).toBe(1);
  });

  it(`ok/${CLIENTS} concurrent clients spread over the replicas: unique serials, each with its issue record, one chain (audit verify)`, async () => {
    let done = false;
    const keys = users.map((u) => freshPublicLine(`${u}@laptop`));
    const runs = await Promise.all(
      [0, 1, 2].map((i) =>
        driveIssuance({
          url: url(i),
          clients: Math.ceil(CLIENTS / 3),
          tokenFor: (c) => tokens.byUser[users[(c * 3 + i) % CLIENTS]],
          publicKeyFor: (c) => keys[(c * 3 + i) % CLIENTS],
          maxPerClient: 8,
          stop: () => done,
        }),
      ),
    );
    done = true;
    const issued = runs.flatMap((r) => r.issued);
    expect(issued.length).toBeGreaterThanOrEqual(CLIENTS);
    expect(new Set(issued.map((c) => c.serial)).size).toBe(issued.length);
    const { rows } = await sql.query<{ serial: string }>(`SELECT line::jsonb->>'serial' AS serial FROM audit_records WHERE line::jsonb->>'type' = 'issue'`);
    const inAudit = new Set(rows.map((r) => r.serial));
    expect(issued.filter((c) => !inAudit.has(c.serial))).toEqual([]);
    const out = execFileSync(process.execPath, [join(REPO, 'dist/cli/jit-sshd.js'), 'audit', 'verify', '--config', set.replicas[2].configPath, '--json'], { encoding: 'utf8' });
    const v = JSON.parse(out);
    expect(v.ok).toBe(true);
    const head = (await sql.query<{ seq: string }>('SELECT seq FROM audit_head')).rows[0];
    expect(v.lastSeq).toBe(Number(head.seq));
  }, 60_000);

  it('ok/racing final approvals on two replicas issue exactly one certificate', async () => {
    for (let round = 0; round < 5; round++) {
      const made = await api(url(0), 'POST', '/v1/requests', { target: 'prod-db', task: 'incident', ticket: `INC-${100 + round}`, publicKey: freshPublicLine() }, tokens.byUser.alice);
      expect(made.status).toBe(202);
      const [a, b] = await Promise.all([
        api(url(1), 'POST', `/v1/requests/${made.body.id}/approve`, {}, tokens.byUser.bob),
        api(url(2), 'POST', `/v1/requests/${made.body.id}/approve`, {}, tokens.byUser.carol),
      ]);
      expect([a.status, b.status].sort()).toEqual([200, 409]);
      const { rows } = await sql.query(`SELECT 1 FROM audit_records WHERE line::jsonb->>'type' = 'issue' AND line::jsonb->>'id' = $1`, [made.body.id]);
      expect(rows).toHaveLength(1);
    }
  }, 30_000);

  it('ok/every replica is still alive and healthy', async () => {
    for (const r of set.replicas) {
      expect(r.child?.exitCode).toBeNull();
      const h = await api(r.url, 'GET', '/healthz');
      expect(h.body).toMatchObject({ ok: true, store: 'ok' });
    }
  });
});
