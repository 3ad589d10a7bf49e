/** Which browser `jit-ssh login --sso` tries to open (the URL is printed either way). */
import { describe, expect, it } from 'vitest';
import { browserCommand } from '../../src/client/sso-browser.js';

describe('browserCommand', () => {
  it('ok/JITSSH_BROWSER wins, then BROWSER', () => {
    expect(browserCommand({ JITSSH_BROWSER: 'firefox', BROWSER: 'chromium' }, 'linux')).toBe('firefox');
    expect(browserCommand({ BROWSER: 'chromium' }, 'linux')).toBe('chromium');
  });
  it('ok/none turns it off', () => expect(browserCommand({ JITSSH_BROWSER: 'none', DISPLAY: ':0' }, 'linux')).toBeUndefined());
  it('ok/macOS uses open', () => expect(browserCommand({}, 'darwin')).toBe('open'));
  it('ok/no graphical session on Linux → print the URL only', () => expect(browserCommand({ PATH: '/usr/bin:/bin' }, 'linux')).toBeUndefined());
});
