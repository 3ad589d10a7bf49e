/**
 * SSO figures for `npm run bench` (also runs alone: `node scripts/bench/sso.mjs` prints JSON).
 *
 *   oidc_verify_us         median cost of verifying one ID token (signature, alg, iss, aud,
 *                          exp/nbf/iat) once the JWKS is cached; RS256, like most IdPs. ≤ 300
 *   sso_login_overhead_ms  median wall time of `jit-ssh login <target> --sso=device` against the
 *                          test IdP (oidc-provider on 127.0.0.1), minus the IdP's own time: the
 *                          span from its device authorization answer to its token answer (the
 *                          person typing the code in headless Chromium, the polling interval)
 *                          and the time it spent answering the CLI's other requests),
 *                          minus `node -e ''` (as login_overhead_ms does).                ≤ 300
 *
 * The IdP and the browser driver are the tests' own helpers (test/helpers/idp.ts, browser.ts),
 * transpiled on the fly with the TypeScript compiler the project already has: one IdP set-up.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { makeBenchEnv, REPO, spawnDaemon, stop } from './fixture.mjs';
import { median } from './load.mjs';

async function tsHelper(name) {
  const { default: ts } = await import('typescript');
  const src = readFileSync(join(REPO, 'test/helpers', `${name}.ts`), 'utf8');
  const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
  const dir = join(REPO, 'node_modules/.cache/jit-bench');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.mjs`);
  writeFileSync(file, js);
  return import(pathToFileURL(file).href);
}

async function verifyCost(idp, { quick, progress }) {
  const { OidcVerifier } = await import('../../dist/auth/oidc.js');
  const { validateConfig } = await import('../../dist/policy/config-schema.js');
  const cfg = validateConfig({ oidc: { issuer: idp.issuer, clientId: idp.clientId } }).oidc;
  const verifier = new OidcVerifier(cfg, { now: () => Date.now(), log: { info() {}, warn() {} } });
  await verifier.verify(await idp.signIdToken({})); // discovery + JWKS fetch, outside the timing
  const perToken = async (key) => {
    const rounds = [];
    for (let r = 0; r < (quick ? 5 : 15); r++) {
      const tokens = await Promise.all(Array.from({ length: 200 }, (_, i) => idp.signIdToken({ sub: `u${r}-${i}` }, { key })));
      const t0 = performance.now();
      for (const t of tokens) await verifier.verify(t);
      rounds.push(((performance.now() - t0) * 1000) / tokens.length);
    }
    return median(rounds);
  };
  const rs256 = await perToken(idp.keys[0]);
  const es256 = await perToken(idp.keys[1]);
  progress(`oidc verify: RS256 ${rs256.toFixed(1)} µs, ES256 ${es256.toFixed(1)} µs per token`);
  return { rs256, es256 };
}

function runDeviceLogin(url, home, browser, signInAtIdp, idp) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const env = { PATH: process.env.PATH, HOME: home, JITSSH_USER: 'zoe', JITSSH_BROWSER: 'none', LANG: 'C.UTF-8' };
    const child = spawn(process.execPath, [join(REPO, 'dist/cli/jit-ssh.js'), 'login', 'prod-db', '--task', 'check-logs', '--sso=device', '--no-agent', '--json',
      '--server', url, '--out', join(home, 'jit')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let signingIn;
    child.stdout.resume();
    child.stderr.on('data', (b) => {
      stderr += b;
      const m = /open (http:\/\/127\.0\.0\.1:\d+\/\S+) on any device and enter the code (\S+)/.exec(stderr);
      if (m && !signingIn) {
        signingIn = (async () => {
          const context = await browser.newContext();
          const page = await context.newPage();
          await page.goto(m[1], { waitUntil: 'domcontentloaded' });
          await signInAtIdp(page, 'zoe', { userCode: m[2], done: async (p) => /success/i.test((await p.textContent('body')) ?? '') && !(await p.locator('input').count()) });
          await context.close();
        })();
      }
    });
    child.on('error', reject);
    child.on('close', async (code) => {
      const wall = performance.now() - t0;
      try {
        await signingIn;
      } catch (e) {
        return reject(e);
      }
      if (code !== 0) return reject(new Error(`jit-ssh login --sso=device exited ${code}: ${stderr.slice(0, 400)}`));
      resolve({ wall, window: idp.deviceWindow() });
    });
  });
}

async function loginOverhead(idp, { quick, progress }) {
  if (!existsSync('/usr/bin/chromium')) return { value: null, note: 'sso_login_overhead_ms: needs /usr/bin/chromium (apt-get install -y chromium)' };
  const [{ launchChromium, signInAtIdp }] = await Promise.all([tsHelper('browser')]);
  const env = makeBenchEnv({ users: 1 });
  appendFileSync(env.configPath, `oidc:\n  issuer: ${idp.issuer}\n  clientId: ${idp.clientId}\n  scopes: [openid, profile, email, groups]\n`);
  const daemon = await spawnDaemon(env);
  const browser = await launchChromium();
  const homes = mkdtempSync(join(tmpdir(), 'jit-bench-sso-'));
  try {
    const overheads = [];
    const walls = [];
    const nodes = [];
    for (let r = 0; r < (quick ? 2 : 5); r++) {
      const before = idp.deviceWindow().busyOutside;
      const { wall, window } = await runDeviceLogin(daemon.url, join(homes, `h${r}`), browser, signInAtIdp, idp);
      const idpTime = window.tokens - window.started + (window.busyOutside - before);
      walls.push(wall);
      overheads.push(wall - idpTime);
      const t = performance.now();
      spawnSync(process.execPath, ['-e', '']);
      nodes.push(performance.now() - t);
      progress(`sso login round ${r + 1}: ${wall.toFixed(0)} ms wall − ${idpTime.toFixed(0)} ms IdP = ${(wall - idpTime).toFixed(0)} ms; node -e '' ${nodes.at(-1).toFixed(0)} ms`);
    }
    // Like login_overhead_ms: what jit-ssh adds beyond starting node at all.
    return { value: median(overheads) - median(nodes), wall: median(walls), cliAndDaemon: median(overheads), node: median(nodes) };
  } finally {
    await browser.close();
    await stop(daemon.child);
    rmSync(homes, { recursive: true, force: true });
    env.cleanup();
  }
}

/** Both SSO figures; `{ oidc_verify_us, sso_login_overhead_ms, sso: details, notes }`. */
export async function benchSso({ quick = false, progress = () => {} } = {}) {
  const { startIdp } = await tsHelper('idp');
  const idp = await startIdp({ accounts: { zoe: { preferred_username: 'zoe', groups: ['oncall'] } } });
  const notes = [];
  try {
    progress('sso: ID token verification with a cached JWKS');
    const verify = await verifyCost(idp, { quick, progress });
    progress('sso: jit-ssh login --sso=device against the local IdP, code typed in headless Chromium');
    const login = await loginOverhead(idp, { quick, progress }).catch((e) => ({ value: null, note: `sso_login_overhead_ms: ${e.message}` }));
    if (login.note) notes.push(login.note);
    const r2 = (x) => (x === null || x === undefined ? null : Math.round(x * 100) / 100);
    return {
      oidc_verify_us: r2(verify.rs256),
      sso_login_overhead_ms: r2(login.value),
      sso: { verify_es256_us: r2(verify.es256), login_wall_ms: r2(login.wall), login_minus_idp_ms: r2(login.cliAndDaemon), node_ms: r2(login.node) },
      notes,
    };
  } finally {
    await idp.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await benchSso({ quick: process.env.BENCH_QUICK === '1', progress: (m) => process.stderr.write(`[bench] ${m}\n`) });
  process.stdout.write(JSON.stringify(r) + '\n');
}
