/**
 * SIGKILL one of two replicas under load: every certificate a client received (from either)
 * has its committed `issue` record, the other replica keeps serving throughout, the chain
 * verifies, and the killed replica restarts and rejoins.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, makeEnv, REPO, type TestEnv } from '../helpers/daemon.js';
import { describeWithPostgres, freshDatabase, type TestDatabase } from '../helpers/pg.js';
import { replicaSet, type ReplicaSet } from '../helpers/replicas.js';
import { driveIssuance, freshPublicLine, staticTokens, type Issued, type Tokens } from './support.js';

const PER_REPLICA = 16;

describeWithPostgres('replicas: SIGKILL one under load', () => {
  let env: TestEnv;
  let db: TestDatabase;
  let set: ReplicaSet;
  let tokens: Tokens;
  let sql: pg.Pool;
  const users = Array.from({ length: PER_REPLICA * 2 }, (_, i) => `eng${i}`);
  const received: Issued[] = [];
  let survivorAfterKill = 0;
  let killedAfter = 0;

  beforeAll(async () => {
    db = await freshDatabase();
    tokens = staticTokens(users);
    env = makeEnv({ users: Object.fromEntries(users.map((u) => [u, ['oncall']])), tokens: tokens.yaml });
    set = await replicaSet(env, 2, db.url);
    await set.start(0);
    await set.start(1);
    sql = new pg.Pool({ connectionString: db.url, max: 2 });

    const keys = users.map((u) => freshPublicLine(`${u}@laptop`));
    let killed = false;
    let stopSurvivor = false;
    const onVictim = driveIssuance({
      url: set.replicas[0].url,
      clients: PER_REPLICA,
      tokenFor: (c) => tokens.byUser[users[c]],
      publicKeyFor: (c) => keys[c],
      maxPerClient: 500,
      stop: () => killed,
      onIssued: (c) => {
        received.push(c);
        if (!killed && received.length >= 150) {
          killed = true;
          killedAfter = received.length;
          set.replicas[0].child!.kill('SIGKILL');
        }
      },
    });
    const onSurvivor = driveIssuance({
      url: set.replicas[1].url,
      clients: PER_REPLICA,
      tokenFor: (c) => tokens.byUser[users[PER_REPLICA + c]],
      publicKeyFor: (c) => keys[PER_REPLICA + c],
      maxPerClient: 500,
      stop: () => stopSurvivor,
      onIssued: (c) => {
        received.push(c);
        if (killed) survivorAfterKill++;
        if (survivorAfterKill >= 100) stopSurvivor = true;
      },
    });
    const safety = setTimeout(() => {
      killed = true;
      set.replicas[0].child!.kill('SIGKILL');
      stopSurvivor = true;
    }, 40_000);
    await onVictim;
    await onSurvivor;
    clearTimeout(safety);
  }, 90_000);

  afterAll(async () => {
    await set?.stopAll();
    await sql?.end();
    await db?.drop();
    env?.cleanup();
  });

  it('was killed mid-load and the other replica kept issuing', () => {
    expect(killedAfter).toBeGreaterThanOrEqual(150);
    expect(set.replicas[0].child?.signalCode).toBe('SIGKILL');
    expect(survivorAfterKill).toBeGreaterThanOrEqual(100);
    expect(set.replicas[1].child?.exitCode).toBeNull();
  });

  it('every certificate a client received has its committed issue record; no serial twice', async () => {
    const { rows } = await sql.query<{ serial: string; id: string }>(`SELECT line::jsonb->>'serial' AS serial, line::jsonb->>'id' AS id FROM audit_records WHERE line::jsonb->>'type' = 'issue'`);
    const bySerial = new Map(rows.map((r) => [r.serial, r.id]));
    expect(received.filter((c) => bySerial.get(c.serial) !== c.id)).toEqual([]);
    expect(new Set(rows.map((r) => r.serial)).size).toBe(rows.length);
  });

  it('the killed replica restarts, rejoins, and the chain verifies', async () => {
    await set.start(0);
    const got = await api(set.replicas[0].url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: freshPublicLine() }, tokens.byUser.eng0);
    expect(got.status).toBe(201);
    expect(received.some((c) => c.serial === got.body.serial)).toBe(false);
    const out = execFileSync(process.execPath, [join(REPO, 'dist/cli/jit-sshd.js'), 'audit', 'verify', '--config', set.replicas[0].configPath, '--json'], { encoding: 'utf8' });
    expect(JSON.parse(out)).toMatchObject({ ok: true });
  }, 30_000);
});
