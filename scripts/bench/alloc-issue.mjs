#!/usr/bin/env node
/**
 * Where the daemon allocates on the issuance hot path: a daemon in this process (V8's sampling
 * heap profiler, collected objects included), POST /v1/requests from 32 keep-alive clients in a
 * child process for DUR seconds, then KiB per request by allocating function. Allocation is what
 * drives minor collections, and those are most of the tail once the event loop has room.
 *   node scripts/bench/alloc-issue.mjs   env: DUR=5 FRONTENDS=1 TOP=30 (npm run build first)
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { Session } from 'node:inspector/promises';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { ed25519, makeBenchEnv } from './fixture.mjs';

const self = fileURLToPath(import.meta.url);

if (process.argv[2] === 'load') {
  // The child: closed-loop clients, one user each; prints how many answers came back.
  const [url, ms, tokens, subjects] = [process.argv[3], Number(process.argv[4]), JSON.parse(process.argv[5]), JSON.parse(process.argv[6])];
  const u = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: tokens.length });
  const t0 = performance.now();
  let n = 0;
  const one = (c) =>
    new Promise((done, fail) => {
      const body = JSON.stringify({ target: 'prod-db', task: 'check-logs', publicKey: subjects[c] });
      const headers = { authorization: `Bearer ${tokens[c]}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
      const req = http.request({ agent, host: u.hostname, port: u.port, path: '/v1/requests', method: 'POST', headers }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 201 ? (n++, done()) : fail(new Error(`status ${res.statusCode}`))));
      });
      req.on('error', fail);
      req.end(body);
    });
  await Promise.all(tokens.map(async (_, c) => { while (performance.now() - t0 < ms) await one(c); }));
  process.stdout.write(JSON.stringify({ n }));
  process.exit(0);
}

const { startDaemon } = await import('../../dist/daemon.js');
const env = makeBenchEnv({ users: 32, config: `frontends: ${Number(process.env.FRONTENDS ?? 1)}\n` });
const daemon = await startDaemon({ configPath: env.configPath, log: pino({ level: 'warn' }) });
const subjects = env.tokens.map((_, i) => ed25519(`s${i}@alloc`).publicLine);
const load = (ms) =>
  new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [self, 'load', daemon.url, String(ms), JSON.stringify(env.tokens), JSON.stringify(subjects)]);
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.pipe(process.stderr);
    c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load exited ${code}`))));
  });
try {
  await load(1500); // warm-up
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.enable');
  await session.post('HeapProfiler.startSampling', { samplingInterval: 8192, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  const { n } = await load(Number(process.env.DUR ?? 5) * 1000);
  const { profile } = await session.post('HeapProfiler.stopSampling');
  const bySite = new Map();
  let total = 0;
  const walk = (node) => {
    const f = node.callFrame;
    const site = `${f.functionName || '(anon)'} ${f.url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, 'dist/')}:${f.lineNumber + 1}`;
    bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
    total += node.selfSize;
    for (const c of node.children) walk(c);
  };
  walk(profile.head);
  console.log(`${n} certificates; ≈ ${(total / n / 1024).toFixed(1)} KiB allocated per request in the daemon (sampled)`);
  for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.TOP ?? 30))) {
    console.log(`${(bytes / n / 1024).toFixed(2).padStart(7)} KiB  ${site}`);
  }
} finally {
  await daemon.close();
  env.cleanup();
}
process.exit(0);
