#!/usr/bin/env node
/**
 * Profiles the issuance hot path: a daemon started with `node --cpu-prof`, POST /v1/requests from
 * 32 keep-alive clients for DUR seconds (default 8), then a summary of where the daemon's busy
 * time went (self and inclusive, idle excluded). The raw .cpuprofile stays in OUT for a flame
 * graph (Chrome DevTools or speedscope).
 * With FRONTENDS=N the daemon runs N front processes and the profile is the daemon's alone.
 *   node scripts/bench/profile-issue.mjs [OUT=/tmp/jit-prof]   env: DUR=8 FRONTENDS=0
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ed25519, makeBenchEnv, spawnListening, REPO, stop } from './fixture.mjs';
import { runLoad } from './load.mjs';

const out = process.argv[2] ?? '/tmp/jit-prof';
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const env = makeBenchEnv({ users: 32, config: `frontends: ${Number(process.env.FRONTENDS ?? 0)}\n` });
const daemon = await spawnListening(join(REPO, 'dist/cli/jit-sshd.js'), ['serve', '--config', env.configPath], {
  nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${out}`],
});
const subjects = Array.from({ length: 32 }, (_, i) => ed25519(`s${i}`).publicLine);
const load = (ms) =>
  runLoad({
    url: daemon.url,
    path: '/v1/requests',
    concurrency: 32,
    durationMs: ms,
    headersFor: (c) => ({ authorization: `Bearer ${env.tokens[c]}` }),
    body: (c) => JSON.stringify({ target: 'prod-db', task: 'check-logs', publicKey: subjects[c] }),
  });
await load(1000);
const res = await load(Number(process.env.DUR ?? 8) * 1000);
await stop(daemon.child);
env.cleanup();
process.stderr.write(`${res.ok}/${res.count} issued, ${res.rps.toFixed(0)}/s\n`);

const file = join(out, readdirSync(out).find((f) => f.endsWith('.cpuprofile')));
const p = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const name = (n) =>
  `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, 'dist/')}:${n.callFrame.lineNumber + 1}`;
const timeOf = new Map();
let busy = 0;
p.samples.forEach((id, i) => {
  if (byId.get(id).callFrame.functionName === '(idle)') return;
  timeOf.set(id, (timeOf.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  busy += p.timeDeltas[i] ?? 0;
});
const self = new Map();
const incl = new Map();
for (const [id, t] of timeOf) {
  self.set(name(byId.get(id)), (self.get(name(byId.get(id))) ?? 0) + t);
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const k = name(byId.get(cur));
    if (!seen.has(k)) incl.set(k, (incl.get(k) ?? 0) + t);
    seen.add(k);
  }
}
const top = (m, n) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `${((100 * v) / busy).toFixed(1).padStart(5)}%  ${k}`);
const perReq = busy / 1000 / (res.count || 1);
console.log(`busy ${(busy / 1e6).toFixed(2)} s over the whole run; ≈ ${perReq.toFixed(3)} ms per request (incl. warm-up and start)\n`);
console.log('self time\n' + top(self, Number(process.env.TOP ?? 40)).join('\n'));
console.log('\ninclusive time\n' + top(incl, Number(process.env.TOP ?? 40) * 2).join('\n'));
console.log(`\nprofile: ${file}`);
