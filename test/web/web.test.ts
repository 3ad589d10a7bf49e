/**
 * The web pages end to end: a real jit-sshd, a real OpenID Provider (oidc-provider, with the
 * daemon as its confidential web client), the built `jit-ssh` CLI as the requester, and headless
 * Chromium as approvers and auditors. The daemon's publicUrl is http://localhost:PORT while the
 * IdP is http://127.0.0.1:PORT: different sites, so the sign-in really comes back through a
 * cross-site redirect chain (the SameSite=Strict trap) as it does from a chat link in real life.
 * Screenshots of every page at 390 px and desktop width go to test-artifacts/web/ (git-ignored).
 */
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../../src/daemon.js';
import { api, freePort, login, makeEnv, REPO, type TestEnv } from '../helpers/daemon.js';
import { startIdp, type TestIdp } from '../helpers/idp.js';
import { CHROMIUM_HINT, launchChromium, signInAtIdp } from '../helpers/browser.js';
import { describeWithTools } from '../helpers/tools.js';
import { baseEnv, ensureBuilt, runCli, startCli } from '../cli/run-cli.js';
import { auditRecords, requestAccess, waitFor } from '../service/support.js';
import { spawnSync } from 'node:child_process';

const ARTIFACTS = join(REPO, 'test-artifacts', 'web');
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 900 };
const SECRET = 'web-client-secret-for-tests-only';

interface Hook {
  event: string;
  text: string;
  url?: string;
  request: { id: string };
}

describeWithTools(
  ['chromium', 'ssh-keygen'],
  'web pages for approvers and auditors, in headless Chromium',
  () => {
    let idp: TestIdp;
    let env: TestEnv;
    let d: RunningDaemon;
    let browser: Browser;
    let hookServer: Server;
    const hooks: Hook[] = [];
    let base: string;
    const contexts: BrowserContext[] = [];

    beforeAll(async () => {
      ensureBuilt();
      mkdirSync(ARTIFACTS, { recursive: true });
      hookServer = createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
          hooks.push(JSON.parse(body) as Hook);
          res.end('ok');
        });
      });
      await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', () => r()));
      const port = await freePort();
      base = `http://localhost:${port}`;
      const account = (name: string) => ({ preferred_username: name, email: `${name}@example.com`, email_verified: true, groups: [] });
      idp = await startIdp({
        accounts: { alice: account('alice'), bob: account('bob'), carol: account('carol'), erin: account('erin'), mallory: account('mallory') },
        // The web pages' own confidential client beside the CLI's public one, as at a real IdP.
        webClient: { clientId: 'jit-ssh-web', clientSecret: SECRET, redirectUris: [`${base}/ui/callback`] },
      });
      env = makeEnv({
        config:
          `publicUrl: ${base}\n` +
          `webhook: { url: "http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/hook", timeout: 2s, retries: 0 }\n` +
          `oidc:\n  issuer: ${idp.issuer}\n  clientId: ${idp.clientId}\n  webClientId: jit-ssh-web\n  clientSecret: ${SECRET}\n  scopes: [openid, profile, email, groups]\n`,
      });
      d = await startDaemon({ configPath: env.configPath, listen: `127.0.0.1:${port}`, log: pino({ level: 'silent' }) });
      browser = await launchChromium();
    });
    afterAll(async () => {
      for (const c of contexts) await c.close().catch(() => undefined);
      await browser?.close();
      await d?.close();
      await idp?.close();
      await new Promise<void>((r) => (hookServer ? hookServer.close(() => r()) : r()));
      env?.cleanup();
    });

    const cli = (user: string, extra: Record<string, string> = {}) =>
      baseEnv(join(env.dir, `home-${user}`), { JITSSH_SERVER: base, JITSSH_USER: user, JITSSH_IDENTITY: env.keys[user].path, JITSSH_POLL_MS: '150', ...extra });

    /** A browser for `user`, signed in through the IdP by opening `path` (the sign-in comes back to it). */
    async function signedIn(user: string, path: string, viewport = PHONE): Promise<Page> {
      const ctx = await browser.newContext({ viewport });
      contexts.push(ctx);
      const page = await ctx.newPage();
      page.on('dialog', (dlg) => {
        throw new Error(`a dialog opened (script ran?): ${dlg.message()}`);
      });
      await page.goto(base + path, { waitUntil: 'domcontentloaded' });
      await signInAtIdp(page, user, {
        done: async (p) => {
          // The callback's page moves on by itself (same-site navigation): wait for it.
          if (new URL(p.url()).pathname === '/ui/callback') await p.waitForURL((u) => u.pathname !== '/ui/callback', { waitUntil: 'domcontentloaded' });
          const u = new URL(p.url());
          return u.origin === base && u.pathname !== '/ui/callback' && u.pathname !== '/ui/login' && (await p.locator('header .brand').count()) > 0;
        },
        maxSteps: 10,
      });
      await page.waitForLoadState('domcontentloaded');
      return page;
    }

    /** Screenshots at phone and desktop width; the layout must not overflow sideways at either. */
    async function shoot(page: Page, name: string): Promise<void> {
      for (const [label, vp] of [['phone', PHONE], ['desktop', DESKTOP]] as const) {
        await page.setViewportSize(vp);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect(overflow, `${name} overflows sideways at ${label} width`).toBeLessThanOrEqual(0);
        await page.screenshot({ path: join(ARTIFACTS, `${name}-${label}.png`), fullPage: true });
      }
      await page.setViewportSize(PHONE);
    }

    let approvedId = '';
    const REASON = '<script>alert("x")</script> replica lag & "quotes"';

    it('ok/approver opens the webhook link on a phone, signs in, approves; the requester\'s waiting login completes', async () => {
      const run = startCli(['login', 'prod-db', '--task', 'incident', '--ticket', 'INC-501', '--reason', REASON, '--no-agent'], cli('alice'));
      const pending = await waitFor('the pending webhook', () => hooks.find((h) => h.event === 'pending' && h.text.includes('INC-501')), 15_000);
      const id = pending.request.id;
      expect(pending.url).toBe(`${base}/ui/requests/${id}`);
      expect(pending.text).toContain(pending.url);

      const page = await signedIn('bob', new URL(pending.url!).pathname);
      expect(new URL(page.url()).pathname).toBe(`/ui/requests/${id}`);
      expect(auditRecords(env).find((x) => x.type === 'auth' && x.method === 'oidc-web' && x.user === 'bob')).toBeDefined();
      // The reason is shown as text, never run as markup.
      await expect.poll(() => page.locator('dd', { hasText: '<script>alert("x")</script>' }).count()).toBe(1);
      expect(await page.evaluate(() => document.querySelectorAll('main script').length)).toBe(0);
      await shoot(page, 'request-pending');

      await page.goto(`${base}/ui/`);
      const card = page.locator(`section#${id}`);
      await expect.poll(() => card.count()).toBe(1);
      const text = (await card.textContent()) ?? '';
      for (const want of ['alice', 'prod-db', 'incident', 'postgres', '15m', 'INC-501', 'incident-with-approval', '0 of 1']) expect(text).toContain(want);
      await shoot(page, 'waiting');

      await card.locator('textarea[name=comment]').fill('go ahead');
      await Promise.all([page.waitForURL(`${base}/ui/requests/${id}`), card.locator('button.approve').click()]);
      expect(await page.locator('h1 .status').textContent()).toBe('issued');
      await shoot(page, 'request-issued');

      const r = await run.done;
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('postgres@prod-db');
      const approve = auditRecords(env).find((x) => x.type === 'approve' && x.id === id);
      expect(approve).toMatchObject({ by: 'bob', comment: 'go ahead' });
      approvedId = id;
    });

    it('ok/deny with a reason; `jit-ssh login --no-wait` then `--resume` reports the denial', async () => {
      const asked = await runCli(['login', 'prod-db', '--task', 'incident', '--ticket', 'INC-502', '--no-wait'], cli('alice'));
      expect(asked.code, asked.stderr).toBe(0);
      const id = asked.stdout.trim();
      const page = await signedIn('bob', `/ui/requests/${id}`, DESKTOP);
      await page.locator('textarea[name=reason]').fill('not during the change freeze');
      await Promise.all([page.waitForURL(`${base}/ui/requests/${id}`), page.locator('button.deny').click()]);
      expect(await page.locator('h1 .status').textContent()).toBe('denied');
      expect(await page.locator('main').textContent()).toContain('not during the change freeze');
      await shoot(page, 'request-denied');
      const got = await runCli(['login', '--resume', id], cli('alice'));
      expect(got.code).toBe(2);
      expect(got.stderr).toContain('not during the change freeze');
      expect(auditRecords(env).find((x) => x.type === 'reject' && x.id === id)).toMatchObject({ by: 'bob', reason: 'not during the change freeze' });
    });

    it('fail/a requester cannot approve their own request, even with a valid CSRF token', async () => {
      // carol is in sre (may ask) and sre-leads (approves that rule): her own request is still not hers to decide.
      const token = await login(d.url, 'carol', env.keys.carol);
      const own = await requestAccess(d, env, token, { target: 'prod-db', task: 'incident', ticket: 'INC-503' });
      expect(own.status).toBe(202);
      const id = own.body.id as string;
      const page = await signedIn('carol', `/ui/requests/${id}`);
      expect(await page.locator('button.approve').count()).toBe(0);
      expect(await page.locator('main').textContent()).toContain('your own request');
      await page.goto(`${base}/ui/`);
      expect(await page.locator(`section#${id}`).count()).toBe(0);
      const csrf = await page.locator('header input[name=csrf]').inputValue();
      const forged = await page.request.post(`${base}/ui/requests/${id}/approve`, { form: { csrf, comment: 'me' }, maxRedirects: 0 });
      expect(forged.status()).toBe(403);
      expect(await forged.text()).toContain('own request');
      expect((await api(d.url, 'GET', `/v1/requests/${id}`, undefined, token)).body.status).toBe('pending');
    });

    it('fail/a form post without the CSRF token (or with another session\'s, or from another site) is refused', async () => {
      const token = await login(d.url, 'alice', env.keys.alice);
      const req = await requestAccess(d, env, token, { target: 'prod-db', task: 'incident', ticket: 'INC-504' });
      const id = req.body.id as string;
      const bob = await signedIn('bob', `/ui/requests/${id}`);
      const other = await signedIn('carol', '/ui/');
      const carolsCsrf = await other.locator('header input[name=csrf]').inputValue();
      const post = (form: Record<string, string>, headers: Record<string, string> = {}) =>
        bob.request.post(`${base}/ui/requests/${id}/approve`, { form, headers, maxRedirects: 0 });
      expect((await post({ comment: 'no token' })).status()).toBe(403);
      expect((await post({ comment: 'wrong', csrf: carolsCsrf })).status()).toBe(403);
      const bobsCsrf = await bob.locator('header input[name=csrf]').inputValue();
      expect((await post({ csrf: bobsCsrf }, { origin: 'https://evil.example' })).status()).toBe(403);
      expect((await api(d.url, 'GET', `/v1/requests/${id}`, undefined, token)).body.status).toBe('pending');
      // The same token from the right page works: the refusals above were about the token alone.
      expect((await post({ csrf: bobsCsrf })).status()).toBe(303);
      expect((await api(d.url, 'GET', `/v1/requests/${id}`, undefined, token)).body.status).toBe('issued');
    });

    it('fail/people who are neither requester, approver nor auditor get 404 for requests and the report', async () => {
      const page = await signedIn('mallory', '/ui/');
      expect((await page.goto(`${base}/ui/requests/${approvedId}`))!.status()).toBe(404);
      expect((await page.goto(`${base}/ui/report`))!.status()).toBe(404);
      expect((await page.request.get(`${base}/ui/report.csv`)).status()).toBe(404);
      // Not signed in at all: pages send you to sign in, polling says 401.
      const anon = await browser.newContext();
      contexts.push(anon);
      expect((await anon.request.get(`${base}/ui/changes`)).status()).toBe(401);
      expect((await anon.request.get(`${base}/ui/`, { maxRedirects: 0 })).headers().location).toBe('/ui/login?next=%2Fui%2F');
    });

    it('ok/the requester sees the live certificate on "My access" and revokes it', async () => {
      const page = await signedIn('alice', '/ui/mine');
      const card = page.locator('section.card', { hasText: 'INC-504' });
      await expect.poll(() => card.count()).toBe(1);
      await shoot(page, 'mine');
      await card.locator('input[name=reason]').fill('done early');
      await Promise.all([page.waitForURL(/\/ui\/requests\/req_/), card.locator('button.revoke').click()]);
      expect(await page.locator('h1 .status').textContent()).toBe('revoked');
      const id = new URL(page.url()).pathname.split('/').pop()!;
      expect(auditRecords(env).find((x) => x.type === 'revoke' && x.id === id)).toMatchObject({ by: 'alice', reason: 'done early' });
    });

    it('ok/auditor: the report shows the grant, a timeline, and its CSV matches the command line\'s', async () => {
      const page = await signedIn('erin', '/ui/report?target=prod-db', DESKTOP);
      const row = page.locator('tbody tr', { hasText: 'INC-501' });
      await expect.poll(() => row.count()).toBe(1);
      const cells = await row.locator('td').allTextContents();
      expect(cells[0]).toBe('alice');
      expect(cells[1]).toBe('prod-db');
      expect(cells[6]).toBe(REASON);
      expect(cells[8]).toBe('bob');
      expect(await page.locator('svg.timeline').count()).toBeGreaterThan(0);
      expect(await page.locator('svg.timeline .approved').count()).toBeGreaterThan(0);
      const revoked = await page.locator('tbody tr', { hasText: 'INC-504' }).locator('td').allTextContents();
      expect(revoked[9]).toBe('alice: done early');
      expect(await page.locator('svg.timeline .revoke').count()).toBe(1);
      await shoot(page, 'report');

      const href = await page.locator('a', { hasText: 'Download CSV' }).getAttribute('href');
      const csv = await page.request.get(base + href!);
      expect(csv.status()).toBe(200);
      expect(csv.headers()['content-type']).toContain('text/csv');
      const webCsv = await csv.text();
      const issue = auditRecords(env).find((x) => x.type === 'issue' && x.id === approvedId)!;
      const line = webCsv.split('\r\n').find((l) => l.startsWith(approvedId + ','))!;
      expect(line).toContain(`,alice,prod-db,postgres,postgres@prod-db,incident,"<script>alert(""x"")</script> replica lag & ""quotes""",INC-501,`);
      expect(line).toContain(`,${issue.serial},${new Date(issue.validAfter * 1000).toISOString()},`);
      expect(line).toContain(',bob,');
      const cliCsv = spawnSync(process.execPath, [join(REPO, 'dist/cli/jit-sshd.js'), 'audit', 'report', '--config', env.configPath, '--target', 'prod-db', '--format', 'csv'], { encoding: 'utf8' });
      expect(cliCsv.status, cliCsv.stderr).toBe(0);
      expect(cliCsv.stdout).toBe(webCsv);
    });

    it('ok/pages update without reload when something changes; security headers and cookie attributes', async () => {
      const page = await signedIn('bob', '/ui/');
      await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
      const token = await login(d.url, 'alice', env.keys.alice);
      const req = await requestAccess(d, env, token, { target: 'prod-db', task: 'incident', ticket: 'INC-505' });
      await expect.poll(() => page.locator(`section#${req.body.id}`).count(), { timeout: 15_000 }).toBe(1);
      expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42); // same document: no reload

      const res = await page.request.get(`${base}/ui/`);
      const csp = res.headers()['content-security-policy'];
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      const session = (await page.context().cookies(base)).find((c) => c.name === 'jit_session')!;
      expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
      // Approvals page weight: HTML + CSS + JS.
      const weight = (await res.body()).length + (await (await page.request.get(`${base}/ui/static/app.css`)).body()).length + (await (await page.request.get(`${base}/ui/static/app.js`)).body()).length;
      expect(weight).toBeLessThan(50 * 1024);
    });
  },
  CHROMIUM_HINT,
);
