#!/usr/bin/env node
/**
 * npm run bench — every figure is a ratio against a baseline measured in the same run,
 * interleaved round by round (the machine may be shared), and each is a median over rounds.
 * Progress goes to stderr; stdout gets a table and, on its last line, one JSON object.
 *
 *   core_ratio         encodeCertificate (check + encode + ed25519 sign) / raw crypto.sign
 *                      of a payload the size of the certificate body.            goal ≥ 0.80
 *   http_ratio         issuance throughput (static bearer token, policy, sign, fdatasync'ed
 *                      audit, state) at 32 concurrent clients / a bare express endpoint
 *                      answering a fixed JSON of the same size, same load generator. ≥ 0.50
 *                      Measured with `frontends: BENCH_FRONTENDS` (default 1 on a machine with
 *                      2 or more cores, else 0); http_ratio_single: the same without fronts.
 *   issue_p99_ms       p99 issuance latency in those rounds (issue_p99_ms_single). ≤ 25
 *   growth_ratio       median issuance latency after 100,000 prior issuances / empty store.
 *                                                                                    ≤ 1.15
 *   startup_ratio_1m   spawn-to-healthy with 1,000,000 prior issuances / with an empty history
 *                      (and healthy_ms_full ≤ 1000), see scripts/bench/startup.mjs.   ≤ 1.30
 *   login_overhead_ms  median `jit-ssh login` wall time − median `node -e ''`.       ≤ 250
 *   rss_mb             the daemon's resident set after the load (without fronts; rss_mb_fronts:
 *                      the daemon with fronts, fronts included).
 *   oidc_verify_us, sso_login_overhead_ms: SSO, see scripts/bench/sso.mjs.      ≤ 300 each
 *   pg_ratio, replica_scaling, pg_issue_p99_ms: PostgreSQL store, see scripts/bench/pg.mjs.
 *   report_render_ms, approvals_page_kb: web pages, see scripts/bench/web.mjs.  ≤ 1000, ≤ 50
 *   pkcs11_sign_ratio  certificates/s with the CA key in SoftHSM2 / with it in a file (report).
 *   agent_sign_ratio   certificates/s with the CA key in an ssh-agent / in a file (report).
 *
 * Options (env): BENCH_QUICK=1 shortens every phase (smoke test; numbers are rougher),
 * BENCH_PRIOR=N changes the 100,000 prior issuances, BENCH_STARTUP_PRIOR=N the 1,000,000 of
 * startup_ratio_1m; BENCH_ONLY=startup runs only that phase, BENCH_ONLY=http only core_ratio,
 * http_ratio, issue_p99_ms and rss_mb. BENCH_DAEMON_NODE_ARGS adds node flags to the daemons
 * the bench starts (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the request path).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes, sign as cryptoSign } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeCertificate, parseCertificate } from '../dist/ca/cert.js';
import { createSigner } from '../dist/ca/signer.js';
import { benchCertParams, ed25519, makeBenchEnv, REPO, rssMb, rssTreeMb, spawnDaemon, spawnListening, stop } from './bench/fixture.mjs';
import { median, pair, percentile, rotate, runLoad } from './bench/load.mjs';
import { benchSso } from './bench/sso.mjs';
import { benchPg } from './bench/pg.mjs';
import { benchWeb } from './bench/web.mjs';

const QUICK = process.env.BENCH_QUICK === '1';
const PRIOR = Number(process.env.BENCH_PRIOR ?? 100_000);
const STARTUP_PRIOR = Number(process.env.BENCH_STARTUP_PRIOR ?? 1_000_000);
const CONCURRENCY = 32;

const progress = (msg) => process.stderr.write(`[bench] ${msg}\n`);
const round2 = (x) => (x === null || x === undefined || Number.isNaN(x) ? null : Math.round(x * 100) / 100);
const children = [];
const cleanups = [];

async function main() {
  const started = performance.now();
  const result = {};
  const notes = [];
  const { measureStartup } = await import('./bench/startup.mjs');
  if (process.env.BENCH_ONLY === 'startup') {
    const s = await measureStartup({ quick: QUICK, progress, prior: STARTUP_PRIOR });
    process.stdout.write(JSON.stringify(s) + '\n');
    return;
  }

  // ---------------------------------------------------------------- core_ratio
  progress('core: encode+sign vs raw crypto.sign (ed25519 CA), interleaved rounds');
  {
    const ca = ed25519('bench-ca');
    const signer = createSigner(ca.privateKey, 'bench-ca');
    const subject = ed25519('subject');
    const subjectBlob = Buffer.from(subject.publicLine.split(' ')[1], 'base64');
    const params = benchCertParams(subjectBlob);
    const bodyLength = parseCertificate(encodeCertificate(params(0), signer).blob).signedBytes.length;
    const payload = randomBytes(bodyLength);
    const rate = (fn, ms) => {
      let n = 0;
      const t0 = performance.now();
      const end = t0 + ms;
      while (performance.now() < end) {
        for (let k = 0; k < 50; k++) fn(n++);
      }
      return n / ((performance.now() - t0) / 1000);
    };
    const ours = [];
    const raw = [];
    const ratios = [];
    // Short paired slices: a neighbour's burst of CPU hits both sides of a pair alike.
    const rounds = QUICK ? 5 : 21;
    const ms = QUICK ? 100 : 150;
    rate((i) => encodeCertificate(params(i), signer), 100); // warm up both paths
    rate(() => cryptoSign(null, payload, ca.privateKey), 100);
    for (let r = 0; r < rounds; r++) {
      const a = () => ours.push(rate((i) => encodeCertificate(params(i), signer), ms));
      const b = () => raw.push(rate(() => cryptoSign(null, payload, ca.privateKey), ms));
      await pair(r, a, b);
      ratios.push(ours[r] / raw[r]);
    }
    result.core = { encode_per_s: Math.round(median(ours)), raw_sign_per_s: Math.round(median(raw)), payload_bytes: bodyLength };
    result.core_ratio = round2(median(ratios));
    progress(`core: ${result.core.encode_per_s}/s vs ${result.core.raw_sign_per_s}/s raw → ratio ${result.core_ratio}`);
  }

  // ---------------------------------------------------------------- http_ratio, issue_p99_ms, rss_mb
  const env = makeBenchEnv({ users: CONCURRENCY });
  cleanups.push(env.cleanup);
  progress('http: starting the daemons and the bare express baseline (child processes)');
  const daemon = await spawnDaemon(env);
  children.push(daemon.child);
  // The same, with front processes for TLS/HTTP (config `frontends`): what a multi-core host runs.
  const FRONTENDS = Number(process.env.BENCH_FRONTENDS ?? (availableParallelism() > 1 ? 1 : 0));
  const frontedEnv = FRONTENDS > 0 ? makeBenchEnv({ users: CONCURRENCY, config: `frontends: ${FRONTENDS}\n` }) : undefined;
  if (frontedEnv) cleanups.push(frontedEnv.cleanup);
  const fronted = frontedEnv ? await spawnDaemon(frontedEnv) : undefined;
  if (fronted) children.push(fronted.child);
  const subjects = Array.from({ length: CONCURRENCY }, (_, i) => ed25519(`subject${i}@bench`).publicLine);
  const issueBody = (c) => JSON.stringify({ target: 'prod-db', task: 'check-logs', publicKey: subjects[c] });
  // One user per client: 32 engineers asking at once, each with their own static token.
  const authFor = (tokens) => (c) => ({ authorization: `Bearer ${tokens[c]}` });
  let responseBytes = 0;
  const probe = await runLoad({
    url: daemon.url,
    path: '/v1/requests',
    concurrency: 1,
    requests: 1,
    headersFor: authFor(env.tokens),
    body: issueBody,
    onResponse: (status, body) => {
      if (status !== 201) throw new Error(`probe issuance failed: ${status} ${body.slice(0, 300)}`);
      responseBytes = Buffer.byteLength(body);
    },
  });
  if (probe.ok !== 1) throw new Error('probe issuance failed');
  const bare = await spawnListening(join(REPO, 'scripts/bench/bare-server.mjs'), [String(responseBytes)]);
  children.push(bare.child);
  {
    const seconds = QUICK ? 1000 : 2500;
    const rounds = QUICK ? 3 : 5;
    const load = (url, tokens, check) =>
      runLoad({
        url,
        path: '/v1/requests',
        concurrency: CONCURRENCY,
        durationMs: seconds,
        headersFor: authFor(tokens),
        body: issueBody,
        onResponse: check,
      });
    let bad = 0;
    const checkIssued = (status, body) => {
      if (status !== 201 || !body.includes('"certificate":"ssh-ed25519-cert-v01@openssh.com ')) bad++;
    };
    /** One daemon's rounds: certificates/s, p50, p99, and its ratio to the bare endpoint per round. */
    const subject = (d, tokens) => {
      const s = { rps: [], p50: [], p99: [], ratios: [] };
      s.run = async () => {
        const res = await load(d.url, tokens, checkIssued);
        s.rps.push(res.rps);
        s.p99.push(percentile(res.latencies, 99));
        s.p50.push(percentile(res.latencies, 50));
        if (res.errors) bad += res.errors;
      };
      return s;
    };
    const single = subject(daemon, env.tokens);
    const withFronts = fronted ? subject(fronted, frontedEnv.tokens) : undefined;
    const base = [];
    progress('http: warm-up');
    await load(bare.url, env.tokens, () => undefined);
    await single.run();
    await withFronts?.run();
    for (const s of [single, withFronts]) if (s) for (const k of ['rps', 'p50', 'p99']) s[k].length = 0;
    for (let r = 0; r < rounds; r++) {
      const runBare = async () => base.push((await load(bare.url, env.tokens, () => undefined)).rps);
      await rotate(r, [single.run, runBare, ...(withFronts ? [withFronts.run] : [])]);
      for (const s of [single, withFronts]) if (s) s.ratios.push(s.rps[r] / base[r]);
      const f = withFronts ? `, with ${FRONTENDS} front(s) ${withFronts.rps[r].toFixed(0)}/s (p99 ${withFronts.p99[r].toFixed(1)} ms)` : '';
      progress(`http round ${r + 1}/${rounds}: issuance ${single.rps[r].toFixed(0)}/s (p99 ${single.p99[r].toFixed(1)} ms)${f}, bare ${base[r].toFixed(0)}/s`);
    }
    if (bad > 0) throw new Error(`${bad} issuance responses were not 201 with a certificate`);
    const headline = withFronts ?? single;
    result.http = {
      frontends: withFronts ? FRONTENDS : 0,
      issue_per_s: Math.round(median(headline.rps)),
      bare_per_s: Math.round(median(base)),
      response_bytes: responseBytes,
      issue_p50_ms: round2(median(headline.p50)),
      single_per_s: Math.round(median(single.rps)),
      issue_p50_ms_single: round2(median(single.p50)),
    };
    result.http_ratio = round2(median(headline.ratios));
    result.issue_p99_ms = round2(median(headline.p99));
    result.http_ratio_single = round2(median(single.ratios));
    result.issue_p99_ms_single = round2(median(single.p99));
    result.rss_mb = rssMb(daemon.child.pid);
    if (fronted) result.rss_mb_fronts = rssTreeMb(fronted.child.pid);
  }
  if (fronted) await stop(fronted.child);
  await stop(bare.child);
  if (process.env.BENCH_ONLY === 'http') {
    await stop(daemon.child);
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }

  // ---------------------------------------------------------------- growth_ratio
  progress(`growth: writing ${PRIOR.toLocaleString('en')} prior issuances (real certificates, chained fdatasync'ed audit)`);
  const full = makeBenchEnv({ users: CONCURRENCY });
  cleanups.push(full.cleanup);
  {
    const pre = spawnSync(process.execPath, [join(REPO, 'scripts/bench/prefill.mjs'), full.dataDir, String(PRIOR), '336'], {
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
      timeout: 300_000,
    });
    if (pre.status !== 0) throw new Error(`prefill failed (${pre.status ?? pre.signal})`);
    const info = JSON.parse(pre.stdout.trim().split('\n').pop());
    const auditMb = statSync(join(full.dataDir, 'audit.jsonl')).size / 2 ** 20;
    progress(`growth: ${info.count} issuances in ${info.seconds.toFixed(1)} s; audit.jsonl ${auditMb.toFixed(0)} MiB; starting a daemon on it`);
    const t0 = performance.now();
    const fullDaemon = await spawnDaemon(full);
    children.push(fullDaemon.child);
    const startMs = performance.now() - t0;
    // The empty-store daemon is the throughput daemon's twin on a fresh data dir.
    const empty = makeBenchEnv({ users: CONCURRENCY });
    cleanups.push(empty.cleanup);
    const emptyDaemon = await spawnDaemon(empty);
    children.push(emptyDaemon.child);
    const sample = async (d, e, n) => {
      const res = await runLoad({
        url: d.url,
        path: '/v1/requests',
        concurrency: 1,
        requests: n,
        headersFor: () => ({ authorization: `Bearer ${e.tokens[0]}` }),
        body: () => issueBody(0),
        onResponse: (status, body) => {
          if (status !== 201) throw new Error(`growth issuance failed: ${status} ${body.slice(0, 300)}`);
        },
      });
      return res.latencies;
    };
    await sample(fullDaemon, full, 20);
    await sample(emptyDaemon, empty, 20);
    const rounds = QUICK ? 3 : 9;
    const per = QUICK ? 20 : 40;
    const fullMed = [];
    const emptyMed = [];
    const ratios = [];
    for (let r = 0; r < rounds; r++) {
      const a = async () => fullMed.push(median(await sample(fullDaemon, full, per)));
      const b = async () => emptyMed.push(median(await sample(emptyDaemon, empty, per)));
      await pair(r, a, b);
      ratios.push(fullMed[r] / emptyMed[r]);
    }
    result.growth = {
      prior_issuances: PRIOR,
      audit_mib: Math.round(auditMb),
      median_ms_full: round2(median(fullMed)),
      median_ms_empty: round2(median(emptyMed)),
      start_ms_full: Math.round(startMs),
      rss_mb_full: rssMb(fullDaemon.child.pid),
    };
    result.growth_ratio = round2(median(ratios));
    progress(`growth: ${result.growth.median_ms_full} ms vs ${result.growth.median_ms_empty} ms → ratio ${result.growth_ratio}`);
    await stop(fullDaemon.child);

    // ---------------------------------------------------------------- login_overhead_ms
    const cli = join(REPO, 'dist/cli/jit-ssh.js');
    if (!existsSync(cli)) {
      result.login_overhead_ms = null;
      notes.push('login_overhead_ms: dist/cli/jit-ssh.js does not exist yet (the jit-ssh CLI is not built)');
    } else {
      progress('login: jit-ssh login wall time vs node -e "" (interleaved)');
      const out = mkdtempSync(join(tmpdir(), 'jit-bench-login-'));
      cleanups.push(() => rmSync(out, { recursive: true, force: true }));
      const childEnv = { ...process.env, SSH_AUTH_SOCK: '' };
      delete childEnv.SSH_AUTH_SOCK;
      const timed = (args) => {
        const t = performance.now();
        const r = spawnSync(process.execPath, args, { encoding: 'utf8', env: childEnv, timeout: 30_000 });
        return { ms: performance.now() - t, r };
      };
      const loginArgs = [cli, 'login', 'prod-db', '--task', 'check-logs', '--identity', empty.login.keyPath, '--server', emptyDaemon.url,
        '--user', empty.login.user, '--out', out, '--no-agent', '--json'];
      const first = timed(loginArgs);
      if (first.r.status !== 0) {
        result.login_overhead_ms = null;
        notes.push(`login_overhead_ms: jit-ssh login failed (exit ${first.r.status}): ${(first.r.stderr || first.r.stdout).trim().slice(0, 200)}`);
      } else {
        const rounds = QUICK ? 3 : 9;
        const logins = [];
        const nodes = [];
        for (let r = 0; r < rounds; r++) {
          const a = () => {
            const t = timed(loginArgs);
            if (t.r.status !== 0) throw new Error(`jit-ssh login failed in round ${r}: ${t.r.stderr.slice(0, 300)}`);
            logins.push(t.ms);
          };
          const b = () => nodes.push(timed(['-e', '']).ms);
          await pair(r, a, b);
        }
        result.login = { login_ms: round2(median(logins)), node_ms: round2(median(nodes)) };
        result.login_overhead_ms = round2(median(logins) - median(nodes));
        progress(`login: ${result.login.login_ms} ms − node ${result.login.node_ms} ms = ${result.login_overhead_ms} ms`);
      }
    }
    await stop(emptyDaemon.child);
  }
  await stop(daemon.child);

  // ---------------------------------------------------------------- startup_ratio_1m
  Object.assign(result, await measureStartup({ quick: QUICK, progress, prior: STARTUP_PRIOR }));

  // ---------------------------------------------------------------- SSO (self-contained)
  {
    const { oidc_verify_us, sso_login_overhead_ms, sso, notes: ssoNotes } = await benchSso({ quick: QUICK, progress }).catch((e) => ({
      oidc_verify_us: null,
      sso_login_overhead_ms: null,
      sso: {},
      notes: [`SSO figures not measured: ${e.message}`],
    }));
    Object.assign(result, { oidc_verify_us, sso_login_overhead_ms, sso });
    notes.push(...ssoNotes);
  }
  // ---------------------------------------------------------------- PostgreSQL (self-contained)
  {
    const r = await benchPg({ quick: QUICK, progress }).catch((e) => ({
      pg_ratio: null,
      replica_scaling: null,
      pg_issue_p99_ms: null,
      pg: {},
      notes: [`PostgreSQL figures not measured: ${e.message}`],
    }));
    Object.assign(result, { pg_ratio: r.pg_ratio, replica_scaling: r.replica_scaling, pg_issue_p99_ms: r.pg_issue_p99_ms, pg: r.pg });
    notes.push(...r.notes);
  }
  // ---------------------------------------------------------------- web pages (self-contained)
  {
    const w = await benchWeb({ quick: QUICK, progress }).catch((e) => ({ report_render_ms: null, approvals_page_kb: null, web: {}, notes: [`web figures not measured: ${e.message}`] }));
    Object.assign(result, { report_render_ms: w.report_render_ms, approvals_page_kb: w.approvals_page_kb, web: w.web });
    notes.push(...w.notes);
  }

  // ---------------------------------------------------------------- pkcs11_sign_ratio, agent_sign_ratio
  {
    const { measureCustody } = await import('./bench/custody.mjs');
    const c = await measureCustody({ quick: QUICK, progress }).catch((e) => ({ notes: [`custody figures not measured: ${e.message}`] }));
    result.custody = { pkcs11: c.pkcs11, agent: c.agent };
    result.pkcs11_sign_ratio = c.pkcs11?.ratio ?? null;
    result.agent_sign_ratio = c.agent?.ratio ?? null;
    notes.push(...c.notes);
  }
  result.seconds = Math.round((performance.now() - started) / 1000);

  // ---------------------------------------------------------------- report
  const rows = [
    ['core_ratio', result.core_ratio, '≥ 0.80', (v) => v >= 0.8, `${result.core.encode_per_s}/s ours vs ${result.core.raw_sign_per_s}/s raw sign, ${result.core.payload_bytes} B body`],
    ['http_ratio', result.http_ratio, '≥ 0.50', (v) => v >= 0.5, `${result.http.issue_per_s}/s issuance (frontends: ${result.http.frontends}) vs ${result.http.bare_per_s}/s bare express, ${CONCURRENCY} clients; without fronts ${result.http_ratio_single} (${result.http.single_per_s}/s)`],
    ['issue_p99_ms', result.issue_p99_ms, '≤ 25', (v) => v <= 25, `p50 ${result.http.issue_p50_ms} ms at ${CONCURRENCY} clients; without fronts p99 ${result.issue_p99_ms_single} ms, p50 ${result.http.issue_p50_ms_single} ms`],
    ['growth_ratio', result.growth_ratio, '≤ 1.15', (v) => v <= 1.15, `${result.growth.median_ms_full} ms after ${PRIOR} vs ${result.growth.median_ms_empty} ms empty; restart ${result.growth.start_ms_full} ms`],
    ['startup_ratio_1m', result.startup_ratio_1m, '≤ 1.30', (v) => v <= 1.3 && result.startup.healthy_ms_full <= 1000,
      `healthy in ${result.startup.healthy_ms_full} ms with ${result.startup.prior} prior (goal ≤ 1000) vs ${result.startup.healthy_ms_empty} ms empty; ` +
        `${result.startup.healthy_ms_full_replay} ms without the snapshot; prefill ${result.startup.prefill_s} s`],
    ['login_overhead_ms', result.login_overhead_ms, '≤ 250', (v) => v <= 250, result.login ? `login ${result.login.login_ms} ms − node ${result.login.node_ms} ms` : 'not measured'],
    ['oidc_verify_us', result.oidc_verify_us, '≤ 300', (v) => v <= 300, `RS256, JWKS cached; ES256 ${result.sso.verify_es256_us} µs`],
    ['sso_login_overhead_ms', result.sso_login_overhead_ms, '≤ 300', (v) => v <= 300,
      `login --sso=device ${result.sso.login_wall_ms} ms wall − IdP time = ${result.sso.login_minus_idp_ms} ms − node ${result.sso.node_ms} ms`],
    ['pg_ratio', result.pg_ratio, '≥ 0.6', (v) => v >= 0.6, `${result.pg.issue_per_s}/s on PostgreSQL vs ${result.pg.embedded_issue_per_s}/s embedded, ${CONCURRENCY} clients`],
    ['replica_scaling', result.replica_scaling, '≥ 1.6', (v) => v >= 1.6, `${result.pg.two_replicas_per_s}/s with 2 replicas vs ${result.pg.one_replica_per_s}/s with 1, ${result.pg.cores} cores`],
    ['pg_issue_p99_ms', result.pg_issue_p99_ms, '(report)', () => true, `p50 ${result.pg.issue_p50_ms} ms on PostgreSQL at ${CONCURRENCY} clients`],
    ['report_render_ms', result.report_render_ms, '≤ 1000', (v) => v <= 1000,
      `access report page over ${result.web.records} audit records, every one parsed; one target ${result.web.report_one_target_ms} ms`],
    ['approvals_page_kb', result.approvals_page_kb, '≤ 50', (v) => v <= 50,
      `10 waiting requests: HTML ${result.web.approvals_html_bytes} B + CSS ${result.web.css_bytes} B + JS ${result.web.js_bytes} B`],
    ...[['pkcs11_sign_ratio', 'pkcs11'], ['agent_sign_ratio', 'agent']].map(([k, b]) => [k, result[k], '(report)', () => true,
      result.custody[b] ? `${result.custody[b].per_s}/s ${result.custody[b].what} vs ${result.custody[b].file_per_s}/s file` : 'not measured']),
    ['rss_mb', result.rss_mb, '(report)', () => true, `daemon after the load; ${result.growth.rss_mb_full} MiB with ${PRIOR} prior${result.rss_mb_fronts ? `; with fronts, all processes: ${result.rss_mb_fronts} MiB` : ''}`],
  ];
  result.goals_met = Object.fromEntries(rows.filter((r) => r[2] !== '(report)').map(([k, v, , ok]) => [k, v === null ? null : ok(v)]));
  if (notes.length) result.notes = notes;
  const pad = (s, n) => String(s).padEnd(n);
  const lines = [
    `${pad('figure', 18)} ${pad('value', 9)} ${pad('goal', 9)} ${pad('met', 5)} detail`,
    ...rows.map(([k, v, goal, ok, detail]) => `${pad(k, 18)} ${pad(v ?? 'n/a', 9)} ${pad(goal, 9)} ${pad(goal === '(report)' ? '' : v === null ? 'n/a' : ok(v) ? 'yes' : 'NO', 5)} ${detail}`),
    ...notes.map((n) => `note: ${n}`),
    `(${result.seconds} s${QUICK ? ', BENCH_QUICK' : ''})`,
  ];
  process.stdout.write(lines.join('\n') + '\n' + JSON.stringify(result) + '\n');
}

const cleanup = async () => {
  for (const c of children) await stop(c).catch(() => undefined);
  for (const f of cleanups) f();
};

main()
  .then(cleanup)
  .catch(async (e) => {
    process.stderr.write(`[bench] failed: ${e?.stack ?? e}\n`);
    await cleanup();
    process.exit(1);
  });
