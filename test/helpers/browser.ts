/**
 * Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core, with the flags that
 * keep it quiet on a machine without internet, and a fresh profile per launch.
 */
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_HINT = 'apt-get install -y chromium';

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * Walks oidc-provider's own pages like a person: types the user code and the login name when
 * asked, presses the page's submit button, until `done(page)` says it is over.
 */
export async function signInAtIdp(page: Page, login: string, opts: { userCode?: string; done: (p: Page) => Promise<boolean>; maxSteps?: number }): Promise<void> {
  for (let step = 0; step < (opts.maxSteps ?? 8); step++) {
    if (await opts.done(page)) return;
    const code = page.locator('input[name="user_code"]');
    if (opts.userCode && (await code.count()) > 0 && (await code.inputValue()) === '') await code.fill(opts.userCode);
    const name = page.locator('input[name="login"]');
    if ((await name.count()) > 0) {
      await name.fill(login);
      await page.locator('input[name="password"]').fill('any-password');
    }
    const submit = page.locator('button[type="submit"]:not([name="abort"]):not([name="logout"])').first();
    await Promise.all([page.waitForLoadState('domcontentloaded'), page.waitForEvent('framenavigated').catch(() => undefined), submit.click()]);
  }
  if (!(await opts.done(page))) throw new Error(`sign-in did not finish; the page says: ${(await page.textContent('body'))?.slice(0, 300)}`);
}
