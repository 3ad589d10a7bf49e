/**
 * Opens a URL in the person's browser when there is one: JITSSH_BROWSER or BROWSER (a command;
 * "none" turns it off), else `open` on macOS, else `xdg-open` under a graphical session. Never
 * fatal: the URL is printed either way.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export function browserCommand(env: NodeJS.ProcessEnv = process.env, platform = process.platform): string | undefined {
  const chosen = env.JITSSH_BROWSER ?? env.BROWSER;
  if (chosen !== undefined) return chosen === '' || chosen === 'none' ? undefined : chosen;
  if (platform === 'darwin') return 'open';
  if (platform === 'win32') return undefined;
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY) return undefined;
  return (env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, 'xdg-open'))) ? 'xdg-open' : undefined;
}

export function openBrowser(url: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const cmd = browserCommand(env);
  if (!cmd) return false;
  try {
    // The URL is one argument, never parsed by a shell.
    const child = spawn(cmd, [url], { stdio: 'ignore', detached: true });
    child.on('error', () => undefined);
    child.unref();
    return true;
  } catch {
    return false;
  }
}
