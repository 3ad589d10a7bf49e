/**
 * The database stops under load (a private PostgreSQL cluster of this test's own, never the
 * shared one): replicas answer 503 store_unavailable and /healthz says so, hand out no
 * certificate without its committed record, do not crash; when the database is back they
 * serve again by themselves, without a restart.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, makeEnv, type TestEnv } from '../helpers/daemon.js';
import { describeWithPostgres, postgresBinDir, privateCluster, type PrivateCluster } from '../helpers/pg.js';
import { replicaSet, type ReplicaSet } from '../helpers/replicas.js';
import { describeWithTools } from '../helpers/tools.js';
import { driveIssuance, freshPublicLine, staticTokens, type Issued, type Tokens } from './support.js';

const PER_REPLICA = 8;

const suite = (): void => {
  let env: TestEnv;
  let cluster: PrivateCluster;
  let set: ReplicaSet;
  let tokens: Tokens;
  const users = Array.from({ length: PER_REPLICA * 2 }, (_, i) => `eng${i}`);
  const received: Issued[] = [];
  const outage = { statuses: {} as Record<number, number>, codes: new Set<string>(), health: [] as number[] };
  let issuedDuringOutage = 0;
  let resumedAfterMs = -1;

  beforeAll(async () => {
    cluster = await privateCluster();
    tokens = staticTokens(users);
    env = makeEnv({ users: Object.fromEntries(users.map((u) => [u, ['oncall']])), tokens: tokens.yaml });
    set = await replicaSet(env, 2, cluster.url);
    await set.start(0);
    await set.start(1);

    const keys = users.map((u) => freshPublicLine(`${u}@laptop`));
    let phase: 'up' | 'down' | 'back' | 'done' = 'up';
    const load = [0, 1].map((i) =>
      driveIssuance({
        url: set.replicas[i].url,
        clients: PER_REPLICA,
        tokenFor: (c) => tokens.byUser[users[i * PER_REPLICA + c]],
        publicKeyFor: (c) => keys[i * PER_REPLICA + c],
        maxPerClient: 1_000_000,
        stop: () => phase === 'done',
        onIssued: (c) => {
          received.push(c);
          if (phase === 'down') issuedDuringOutage++;
        },
      }),
    );
    while (received.length < 60) await new Promise((r) => setTimeout(r, 10));
    cluster.stop();
    phase = 'down';
    // Give in-flight work time to fail over to errors, then look at what callers get.
    await new Promise((r) => setTimeout(r, 500));
    issuedDuringOutage = 0;
    for (let k = 0; k < 10; k++) {
      for (const r of set.replicas) {
        const res = await api(r.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: keys[0] }, tokens.byUser.eng0);
        outage.statuses[res.status] = (outage.statuses[res.status] ?? 0) + 1;
        if (res.body?.error?.code) outage.codes.add(res.body.error.code);
        outage.health.push((await fetch(`${r.url}/healthz`)).status);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const downFor = issuedDuringOutage;
    cluster.start();
    phase = 'back';
    const t0 = Date.now();
    const before = received.length;
    while (received.length < before + 50 && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 20));
    resumedAfterMs = Date.now() - t0;
    issuedDuringOutage = downFor;
    phase = 'done';
    await Promise.all(load);
  }, 120_000);

  afterAll(async () => {
    await set?.stopAll();
    cluster?.destroy();
    env?.cleanup();
  });

  it('while the database is down: 503 store_unavailable, /healthz 503, no certificate', () => {
    expect(outage.statuses).toEqual({ 503: 20 });
    expect([...outage.codes]).toEqual(['store_unavailable']);
    expect(outage.health.every((s) => s === 503)).toBe(true);
    expect(issuedDuringOutage).toBe(0);
  });

  it('when it is back, both replicas issue again without a restart (and never crashed)', async () => {
    expect(resumedAfterMs).toBeGreaterThanOrEqual(0);
    expect(resumedAfterMs).toBeLessThan(30_000);
    for (const r of set.replicas) {
      expect(r.child?.exitCode).toBeNull();
      expect(r.child?.signalCode).toBeNull();
      expect((await api(r.url, 'GET', '/healthz')).body).toMatchObject({ ok: true, store: 'ok' });
    }
    const out = set.replicas.map((r) => r.output.join('')).join('');
    expect(out).not.toMatch(/unhandled|UnhandledPromiseRejection|uncaught/i);
  });

  it('every certificate a client received has its committed issue record', async () => {
    const sql = new pg.Client(cluster.url);
    await sql.connect();
    try {
      const { rows } = await sql.query<{ serial: string; id: string }>(`SELECT line::jsonb->>'serial' AS serial, line::jsonb->>'id' AS id FROM audit_records WHERE line::jsonb->>'type' = 'issue'`);
      const bySerial = new Map(rows.map((r) => [r.serial, r.id]));
      expect(received.length).toBeGreaterThan(100);
      expect(received.filter((c) => bySerial.get(c.serial) !== c.id)).toEqual([]);
    } finally {
      await sql.end();
    }
  });
};

describeWithTools(['pg_ctlcluster'], 'database outage under load', () => {
  if (postgresBinDir()) describeWithPostgres('private PostgreSQL cluster stopped and started', suite);
}, 'apt-get install -y postgresql');
