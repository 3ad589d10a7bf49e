/**
 * PostgreSQL figures, self-contained (npm run bench calls benchPg; also runnable alone:
 * `node scripts/bench/pg.mjs`). Needs a PostgreSQL at JIT_BENCH_PG_URL (default
 * postgres://postgres@127.0.0.1:5432/postgres) where it may create and drop a database.
 *
 *   pg_ratio          issuance/s on PostgreSQL / on the embedded store, same load, same run,
 *                     interleaved rounds (32 clients, static tokens).              goal ≥ 0.6
 *   replica_scaling   issuance/s of 2 replicas (16 clients each, at once) / 1 replica (32
 *                     clients), same database.                 goal ≥ 1.6 given the cores
 *   pg_issue_p99_ms   p99 issuance latency on PostgreSQL in the pg_ratio rounds.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { ed25519, makeBenchEnv, spawnDaemon, stop } from './fixture.mjs';
import { median, pair, percentile, runLoad } from './load.mjs';

const ADMIN_URL = process.env.JIT_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const CONCURRENCY = 32;
const r2 = (x) => (x === null || x === undefined || Number.isNaN(x) ? null : Math.round(x * 100) / 100);

export async function benchPg({ quick = false, progress = () => undefined } = {}) {
  const name = `jit_bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client(ADMIN_URL);
  try {
    await admin.connect();
  } catch (e) {
    return { pg_ratio: null, replica_scaling: null, pg_issue_p99_ms: null, pg: {}, notes: [`PostgreSQL figures not measured: no server at ${ADMIN_URL} (${e.message})`] };
  }
  const children = [];
  const cleanups = [];
  try {
    await admin.query(`CREATE DATABASE ${name}`);
    const u = new URL(ADMIN_URL);
    u.pathname = `/${name}`;
    const dbUrl = u.toString();

    const embedded = makeBenchEnv({ users: CONCURRENCY });
    cleanups.push(embedded.cleanup);
    const onPg = makeBenchEnv({ users: CONCURRENCY });
    cleanups.push(onPg.cleanup);
    appendFileSync(onPg.configPath, `store: { type: postgres, url: "${dbUrl}", poolSize: 10 }\n`);
    progress('pg: starting an embedded daemon and a PostgreSQL one');
    const e = await spawnDaemon(embedded);
    children.push(e.child);
    const a = await spawnDaemon(onPg);
    children.push(a.child);
    // The second replica: its own data dir, the first one's CA keys, the same database and tokens.
    const second = { ...onPg, configPath: join(onPg.dir, 'replica2.yaml'), dataDir: join(onPg.dir, 'data2') };
    mkdirSync(second.dataDir, { mode: 0o700 });
    symlinkSync(join(onPg.dataDir, 'ca'), join(second.dataDir, 'ca'));
    const { readFileSync, writeFileSync } = await import('node:fs');
    writeFileSync(second.configPath, readFileSync(onPg.configPath, 'utf8').replace(/^dataDir: .*$/m, `dataDir: ${second.dataDir}`));
    const b = await spawnDaemon(second);
    children.push(b.child);

    // The tokens of both bench envs differ; each env's daemon knows only its own policy's.
    const subjects = Array.from({ length: CONCURRENCY }, (_, i) => ed25519(`pg-subject${i}@bench`).publicLine);
    const body = (c) => JSON.stringify({ target: 'prod-db', task: 'check-logs', publicKey: subjects[c % CONCURRENCY] });
    let bad = 0;
    const check = (status, text) => {
      if (status !== 201 || !text.includes('"certificate":"ssh-ed25519-cert-v01@openssh.com ')) bad++;
    };
    const ms = quick ? 1000 : 2500;
    const rounds = quick ? 3 : 5;
    const load = (url, env, clients, offset = 0) =>
      runLoad({ url, path: '/v1/requests', concurrency: clients, durationMs: ms, headersFor: (c) => ({ authorization: `Bearer ${env.tokens[c + offset]}` }), body, onResponse: check });

    progress('pg: warm-up');
    await load(e.url, embedded, CONCURRENCY);
    await load(a.url, onPg, CONCURRENCY);
    await load(b.url, onPg, CONCURRENCY);

    const embRps = [];
    const pgRps = [];
    const p99s = [];
    const p50s = [];
    const ratios = [];
    for (let r = 0; r < rounds; r++) {
      await pair(
        r,
        async () => {
          const res = await load(a.url, onPg, CONCURRENCY);
          pgRps.push(res.rps);
          p99s.push(percentile(res.latencies, 99));
          p50s.push(percentile(res.latencies, 50));
        },
        async () => embRps.push((await load(e.url, embedded, CONCURRENCY)).rps),
      );
      ratios.push(pgRps[r] / embRps[r]);
      progress(`pg round ${r + 1}/${rounds}: PostgreSQL ${pgRps[r].toFixed(0)}/s, embedded ${embRps[r].toFixed(0)}/s, p99 ${p99s[r].toFixed(1)} ms`);
    }

    const one = [];
    const two = [];
    const scaling = [];
    for (let r = 0; r < rounds; r++) {
      await pair(
        r,
        async () => {
          const [x, y] = await Promise.all([load(a.url, onPg, CONCURRENCY / 2), load(b.url, onPg, CONCURRENCY / 2, CONCURRENCY / 2)]);
          two.push(x.rps + y.rps);
        },
        async () => one.push((await load(a.url, onPg, CONCURRENCY)).rps),
      );
      scaling.push(two[r] / one[r]);
      progress(`replicas round ${r + 1}/${rounds}: 2 replicas ${two[r].toFixed(0)}/s, 1 replica ${one[r].toFixed(0)}/s`);
    }
    if (bad > 0) throw new Error(`${bad} issuance responses were not 201 with a certificate`);
    const cores = availableParallelism();
    return {
      pg_ratio: r2(median(ratios)),
      replica_scaling: r2(median(scaling)),
      pg_issue_p99_ms: r2(median(p99s)),
      pg: {
        issue_per_s: Math.round(median(pgRps)),
        embedded_issue_per_s: Math.round(median(embRps)),
        issue_p50_ms: r2(median(p50s)),
        one_replica_per_s: Math.round(median(one)),
        two_replicas_per_s: Math.round(median(two)),
        cores,
      },
      notes:
        cores < 4
          ? [`replica_scaling on ${cores} cores: both replicas, PostgreSQL and the load generator share them, so a second replica cannot add CPU; the figure shows the overhead of sharing one chain, not the gain of a second machine`]
          : [],
    };
  } finally {
    for (const c of children) await stop(c).catch(() => undefined);
    for (const f of cleanups) f();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.env.BENCH_QUICK === '1';
  benchPg({ quick, progress: (m) => process.stderr.write(`[bench] ${m}\n`) }).then(
    (r) => process.stdout.write(JSON.stringify(r) + '\n'),
    (e) => {
      process.stderr.write(`[bench] failed: ${e?.stack ?? e}\n`);
      process.exit(1);
    },
  );
}
