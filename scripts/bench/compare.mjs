#!/usr/bin/env node
/**
 * Two built checkouts side by side: a daemon from each, POST /v1/requests from 32 keep-alive
 * clients in interleaved rounds (A B, B A, …), and per round each daemon's certificates/s,
 * CPU per certificate (whole process, and its main thread alone: the event loop is what a
 * single-threaded server runs out of), p50 and p99. Prints medians and the medians of the
 * per-round B/A ratios. Two copies of the same build differ by up to ~10% here: smaller
 * differences are noise.
 *   node scripts/bench/compare.mjs <checkout A> <checkout B>   env: ROUNDS=8 MS=2500
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { join, resolve } from 'node:path';
import { ed25519, makeBenchEnv, rssMb, spawnListening, stop } from './fixture.mjs';
import { median, percentile } from './load.mjs';

const [dirA, dirB] = process.argv.slice(2).map((d) => resolve(d));
if (!dirA || !dirB) {
  process.stderr.write('usage: node scripts/bench/compare.mjs <checkout A> <checkout B> (each built: npm run build)\n');
  process.exit(2);
}
const ROUNDS = Number(process.env.ROUNDS ?? 8);
const MS = Number(process.env.MS ?? 2500);
const CONCURRENCY = 32;

/** CPU ms used so far by a process, or by one of its threads (utime + stime, clock ticks of 10 ms). */
const cpuMs = (path) => {
  const f = readFileSync(path, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
};
/** CPU ms of a process and its live children (front processes). */
const treeCpuMs = (pid) => {
  let kids = [];
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    // no children
  }
  return [pid, ...kids].reduce((t, p) => t + cpuMs(`/proc/${p}/stat`), 0);
};
const subjects = Array.from({ length: CONCURRENCY }, (_, i) => ed25519(`s${i}@compare`).publicLine);

async function start(dir) {
  const env = makeBenchEnv({ users: CONCURRENCY, config: `frontends: ${Number(process.env.FRONTENDS ?? 0)}\n` });
  const d = await spawnListening(join(dir, 'dist/cli/jit-sshd.js'), ['serve', '--config', env.configPath]);
  return { env, d, url: new URL(d.url), agent: new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY }), rounds: [] };
}

async function round(x, ms) {
  const pid = x.d.child.pid;
  const latencies = [];
  const t0 = performance.now();
  const [c0, m0] = [treeCpuMs(pid), cpuMs(`/proc/${pid}/task/${pid}/stat`)];
  const one = (c) =>
    new Promise((done, fail) => {
      const body = JSON.stringify({ target: 'prod-db', task: 'check-logs', publicKey: subjects[c] });
      const s = performance.now();
      const headers = { authorization: `Bearer ${x.env.tokens[c]}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
      const req = http.request({ agent: x.agent, host: x.url.hostname, port: x.url.port, path: '/v1/requests', method: 'POST', headers }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 201) return fail(new Error(`${x.d.url}: status ${res.statusCode}`));
          latencies.push(performance.now() - s);
          done();
        });
      });
      req.on('error', fail);
      req.end(body);
    });
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, c) => { while (performance.now() - t0 < ms) await one(c); }));
  const n = latencies.length;
  return {
    per_s: (n / (performance.now() - t0)) * 1000,
    cpu_ms: (treeCpuMs(pid) - c0) / n,
    main_ms: (cpuMs(`/proc/${pid}/task/${pid}/stat`) - m0) / n,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

const sides = { A: await start(dirA), B: await start(dirB) };
try {
  for (const x of Object.values(sides)) await round(x, 1500); // warm-up
  for (let r = 0; r < ROUNDS; r++) for (const k of r % 2 ? ['B', 'A'] : ['A', 'B']) sides[k].rounds.push(await round(sides[k], MS));
  const fields = ['per_s', 'cpu_ms', 'main_ms', 'p50', 'p99'];
  const round3 = (v) => Math.round(v * 1000) / 1000;
  const out = {};
  for (const [k, x] of Object.entries(sides)) {
    out[k] = { checkout: k === 'A' ? dirA : dirB, rss_mb: rssMb(x.d.child.pid) };
    for (const f of fields) out[k][f] = round3(median(x.rounds.map((r) => r[f])));
  }
  out.ratio_b_over_a = Object.fromEntries(fields.map((f) => [f, round3(median(sides.A.rounds.map((a, i) => sides.B.rounds[i][f] / a[f])))]));
  process.stdout.write(JSON.stringify(out) + '\n');
} finally {
  for (const x of Object.values(sides)) {
    await stop(x.d.child);
    x.env.cleanup();
  }
}
