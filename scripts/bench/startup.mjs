/**
 * startup_ratio_1m: spawn-to-healthy of a daemon whose data dir holds N prior issuances (default
 * 1,000,000, written by prefill.mjs through the daemon's own store, as a daemon that ran and shut
 * down cleanly leaves it) / the same on a data dir with no history, interleaved round by round.
 * "Healthy" = the first 200 from GET /healthz, timed from spawn. Also reports the start after a
 * crash (no final snapshot: the last 10,000 records are a tail to replay) and the full replay
 * (snapshot moved aside), for the record.
 */
import { spawn, spawnSync } from 'node:child_process';
import { renameSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { makeBenchEnv, REPO, stop } from './fixture.mjs';
import { median, pair } from './load.mjs';

const get = (url) =>
  new Promise((resolve) => {
    const req = http.get(url, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.setTimeout(2000, () => req.destroy());
  });

/** ms from spawn to the first 200 of /healthz; the daemon is stopped afterwards. */
async function spawnToHealthy(env) {
  const t0 = performance.now();
  const child = spawn(process.execPath, [join(REPO, 'dist/cli/jit-sshd.js'), 'serve', '--config', env.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (c) => (err += c));
  const url = await new Promise((resolve, reject) => {
    child.stdout.on('data', (c) => {
      out += c;
      const m = /"url":"([^"]+)"/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`daemon exited with ${code} before listening: ${err.slice(0, 1000)}`)));
  });
  while ((await get(`${url}/healthz`)) !== 200) {
    if (performance.now() - t0 > 120_000) throw new Error('daemon not healthy after 120 s');
    await new Promise((r) => setTimeout(r, 5));
  }
  const ms = performance.now() - t0;
  const replayed = /"replayedRecords":(\d+)/.exec(out)?.[1];
  await stop(child);
  return { ms, replayed: replayed === undefined ? null : Number(replayed) };
}

export async function measureStartup({ quick, progress, prior }) {
  const full = makeBenchEnv({ users: 32 });
  const empty = makeBenchEnv({ users: 32 });
  try {
    progress(`startup: writing ${prior.toLocaleString('en')} prior issuances (real certificates, chained fdatasync'ed audit)`);
    const t = performance.now();
    const pre = spawnSync(process.execPath, [join(REPO, 'scripts/bench/prefill.mjs'), full.dataDir, String(prior), '336'], {
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
      timeout: 1_800_000,
    });
    if (pre.status !== 0) throw new Error(`prefill failed (${pre.status ?? pre.signal})`);
    const prefillSeconds = (performance.now() - t) / 1000;
    const auditMib = statSync(join(full.dataDir, 'audit.jsonl')).size / 2 ** 20;
    progress(`startup: prefill took ${prefillSeconds.toFixed(0)} s (${Math.round(prior / prefillSeconds)}/s); audit.jsonl ${auditMib.toFixed(0)} MiB`);
    await spawnToHealthy(empty); // creates the empty dir's keys: later rounds time restarts, as for the full one
    await spawnToHealthy(full);
    const rounds = quick ? 3 : 7;
    const fullMs = [];
    const emptyMs = [];
    const ratios = [];
    let replayed = null;
    for (let r = 0; r < rounds; r++) {
      await pair(
        r,
        async () => {
          const x = await spawnToHealthy(full);
          fullMs.push(x.ms);
          replayed = x.replayed;
        },
        async () => emptyMs.push((await spawnToHealthy(empty)).ms),
      );
      ratios.push(fullMs[r] / emptyMs[r]);
      progress(`startup round ${r + 1}/${rounds}: ${fullMs[r].toFixed(0)} ms with history vs ${emptyMs[r].toFixed(0)} ms empty`);
    }
    // The slow paths, once each: what a start costs without the snapshot (first start after an
    // upgrade, or a snapshot that failed its checks), so the figure above is read in context.
    const snap = join(full.dataDir, 'audit-snapshot.json');
    renameSync(snap, `${snap}.aside`);
    const noSnapshot = await spawnToHealthy(full);
    progress(`startup: without the snapshot (full replay and verify): ${noSnapshot.ms.toFixed(0)} ms`);
    return {
      startup_ratio_1m: Math.round(median(ratios) * 100) / 100,
      startup: {
        prior,
        audit_mib: Math.round(auditMib),
        prefill_s: Math.round(prefillSeconds),
        healthy_ms_full: Math.round(median(fullMs)),
        healthy_ms_empty: Math.round(median(emptyMs)),
        replayed_records: replayed,
        healthy_ms_full_replay: Math.round(noSnapshot.ms),
      },
    };
  } finally {
    rmSync(full.dir, { recursive: true, force: true });
    rmSync(empty.dir, { recursive: true, force: true });
  }
}
