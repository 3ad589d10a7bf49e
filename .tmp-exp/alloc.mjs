import { Session } from 'node:inspector/promises';
import { execFileSync } from 'node:child_process';
import { pino } from 'pino';
import { startDaemon } from '../dist/daemon.js';
import { ed25519, makeBenchEnv } from '../scripts/bench/fixture.mjs';
const FR = Number(process.env.FRONTENDS ?? 1);
const env = makeBenchEnv({ users: 32, config: `frontends: ${FR}\n` });
const d = await startDaemon({ configPath: env.configPath, log: pino({ level: 'warn' }) });
const subjects = Array.from({ length: 32 }, (_, i) => ed25519(`s${i}`).publicLine);
const run = (ms) => JSON.parse(execFileSync(process.execPath, [new URL('./load.mjs', import.meta.url).pathname, d.url, String(ms), JSON.stringify(env.tokens), JSON.stringify(subjects)]).toString());
// execFileSync blocks this loop: use an async spawn instead
import { spawn } from 'node:child_process';
const runAsync = (ms) => new Promise((res) => { const c = spawn(process.execPath, [new URL('./load.mjs', import.meta.url).pathname, d.url, String(ms), JSON.stringify(env.tokens), JSON.stringify(subjects)]); let o = ''; c.stdout.on('data', (x) => (o += x)); c.on('exit', () => res(JSON.parse(o))); });
await runAsync(1500);
const s = new Session(); s.connect();
await s.post('HeapProfiler.enable');
await s.post('HeapProfiler.startSampling', { samplingInterval: 8192, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
const r = await runAsync(5000);
const { profile } = await s.post('HeapProfiler.stopSampling');
const self = new Map(); let total = 0;
const walk = (n, stack) => {
  const name = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, 'dist/')}:${n.callFrame.lineNumber + 1}`;
  self.set(name, (self.get(name) ?? 0) + n.selfSize); total += n.selfSize;
  for (const c of n.children) walk(c, stack);
};
walk(profile.head);
console.log(`requests ${r.n}; sampled ${(total / 1e6).toFixed(1)} MB ≈ ${(total / r.n / 1024).toFixed(1)} KiB/request`);
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 35)) console.log(`${(v / r.n / 1024).toFixed(2).padStart(6)} KiB  ${k}`);
await d.close(); env.cleanup(); process.exit(0);
