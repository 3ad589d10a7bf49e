/**
 * SSO end to end: the built `jit-ssh` CLI, a real jit-sshd, a real OpenID Provider and a real
 * headless Chromium in which the person signs in. Authorization code + PKCE through the CLI's
 * loopback redirect, and the device grant with the user code typed into the IdP's page.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../../src/daemon.js';
import { makeEnv, type TestEnv } from '../helpers/daemon.js';
import { startIdp, type TestIdp } from '../helpers/idp.js';
import { CHROMIUM_HINT, launchChromium, signInAtIdp } from '../helpers/browser.js';
import { sshKeygen } from '../helpers/keys.js';
import { describeWithTools } from '../helpers/tools.js';
import { baseEnv, CLI, ensureBuilt, runCli, spawnScript, startCli } from '../cli/run-cli.js';

async function waitFor(get: () => string, re: RegExp, ms = 15_000): Promise<RegExpExecArray> {
  const end = Date.now() + ms;
  for (;;) {
    const m = re.exec(get());
    if (m) return m;
    if (Date.now() > end) throw new Error(`timed out waiting for ${re}; got: ${get()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describeWithTools(
  ['chromium', 'ssh-keygen', 'script'],
  'SSO end to end: jit-ssh login --sso through headless Chromium',
  () => {
    let idp: TestIdp;
    let env: TestEnv;
    let d: RunningDaemon;
    let browser: Browser;

    beforeAll(async () => {
      ensureBuilt();
      idp = await startIdp({ accounts: { zoe: { preferred_username: 'zoe', email: 'zoe@example.com', email_verified: true, groups: ['oncall'] } } });
      env = makeEnv({ config: `oidc:\n  issuer: ${idp.issuer}\n  clientId: ${idp.clientId}\n  scopes: [openid, profile, email, groups]\n` });
      d = await startDaemon({ configPath: env.configPath, log: pino({ level: 'silent' }) });
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
      await d?.close();
      await idp?.close();
      env?.cleanup();
    });

    const cliEnv = (home: string) => baseEnv(home, { JITSSH_SERVER: d.url, JITSSH_USER: 'zoe', JITSSH_BROWSER: 'none' });

    /** `jit-ssh login prod-db --task check-logs <sso flag>` in its own HOME, stderr readable while it runs. */
    function startSsoLogin(name: string, ssoFlag: string) {
      const home = join(env.dir, name);
      const out = join(home, 'jit');
      const run = startCli(['login', 'prod-db', '--task', 'check-logs', ssoFlag, '--no-agent', '--out', out], cliEnv(home));
      let stderr = '';
      run.child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
      return { home, out, done: run.done, stderr: () => stderr };
    }

    it('authorization code + PKCE: the browser signs in, the CLI gets a certificate for an SSO-only user', async () => {
      const { home, out, done, stderr } = startSsoLogin('home-code', '--sso');
      const [url] = await waitFor(stderr, /http:\/\/127\.0\.0\.1:\d+\/auth\?\S+/);
      const authUrl = new URL(url);
      expect(authUrl.searchParams.get('code_challenge_method')).toBe('S256');
      expect(authUrl.searchParams.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
      expect(authUrl.searchParams.get('state')).toBeTruthy();
      expect(authUrl.searchParams.get('nonce')).toBeTruthy();

      const page = await browser.newPage();
      await page.goto(url, { waitUntil: 'domcontentloaded' });
      await signInAtIdp(page, 'zoe', { done: async (p) => p.url().includes('/callback') && /Signed in to jit-ssh/.test((await p.textContent('body')) ?? '') });
      await page.close();

      const r = await done;
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('certificate for prod-db issued');
      expect(stderr()).toContain('signed in with SSO as zoe (groups: oncall)');
      const certFile = join(out, 'prod-db-cert.pub');
      expect(sshKeygen(['-L', '-f', certFile])).toMatch(/Key ID: "[^"]*zoe/);

      // The session is cached 0600, and logout forgets it.
      const cached = readdirSync(out).filter((f) => f.startsWith('.token-'));
      expect(cached).toHaveLength(1);
      expect(statSync(join(out, cached[0])).mode & 0o777).toBe(0o600);
      const targets = await runCli(['targets', '--out', out, '--json'], cliEnv(home));
      expect(targets.code, targets.stderr).toBe(0);
      const lo = await runCli(['logout', '--out', out], cliEnv(home));
      expect(lo.code).toBe(0);
      expect(lo.stdout).toContain('forgot the session token for zoe');
      expect(existsSync(join(out, cached[0]))).toBe(false);
    });

    it('device grant: the code is typed into the IdP page in the browser; the CLI polls and gets a certificate', async () => {
      const { out, done, stderr } = startSsoLogin('home-device', '--sso=device');
      const m = await waitFor(stderr, /open (http:\/\/127\.0\.0\.1:\d+\/\S+) on any device and enter the code (\S+)/);
      const page = await browser.newPage();
      await page.goto(m[1], { waitUntil: 'domcontentloaded' });
      await signInAtIdp(page, 'zoe', { userCode: m[2], done: async (p) => /Sign-in Success|signed in|success/i.test((await p.textContent('body')) ?? '') && !(await p.locator('input').count()) });
      await page.close();
      const r = await done;
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('certificate for prod-db issued');
      expect(sshKeygen(['-L', '-f', join(out, 'prod-db-cert.pub')])).toMatch(/Key ID: "[^"]*zoe/);
    });

    it('fallback: no key works, a person at a terminal → the CLI opens the browser for SSO by itself', async () => {
      const home = join(env.dir, 'home-fallback');
      const urlFile = join(env.dir, 'opened-url.txt');
      const opener = join(env.dir, 'opener.sh');
      writeFileSync(opener, `#!/bin/sh\nprintf %s "$1" > ${urlFile}\n`, { mode: 0o755 });
      const cmd = [process.execPath, CLI, 'targets', '--json', '--out', join(home, 'jit')].join(' ');
      const run = spawnScript(cmd, { ...cliEnv(home), JITSSH_BROWSER: opener });
      const [url] = await waitFor(() => (existsSync(urlFile) ? readFileSync(urlFile, 'utf8') : ''), /^http\S+/);
      const page = await browser.newPage();
      await page.goto(url, { waitUntil: 'domcontentloaded' });
      await signInAtIdp(page, 'zoe', { done: async (p) => /Signed in to jit-ssh/.test((await p.textContent('body')) ?? '') });
      await page.close();
      const r = await run.done;
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain('signing in with SSO instead');
      expect(r.out).toContain('prod-db');
    });

    it('fail/a forged callback (wrong state) ends the sign-in; no session is cached', async () => {
      const { out, done, stderr } = startSsoLogin('home-forged', '--sso');
      const [url] = await waitFor(stderr, /http:\/\/127\.0\.0\.1:\d+\/auth\?\S+/);
      const redirect = new URL(url).searchParams.get('redirect_uri')!;
      const forged = await fetch(`${redirect}?code=stolen&state=not-the-one&iss=${encodeURIComponent(idp.issuer)}`);
      expect(forged.status).toBe(400);
      const r = await done;
      expect(r.code).toBe(2);
      expect(r.stderr, r.stderr).toMatch(/SSO sign-in failed: .*state/i);
      expect(existsSync(out) ? readdirSync(out).filter((f) => f.startsWith('.token-')) : []).toEqual([]);
    });

    it('fail/no key works and no terminal: the CLI says SSO is offered instead of waiting for nobody', async () => {
      const home = join(env.dir, 'home-nokey');
      const r = await runCli(['targets', '--out', join(home, 'jit')], cliEnv(home));
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/offers SSO: run again with --sso/);
    });
  },
  CHROMIUM_HINT,
);
