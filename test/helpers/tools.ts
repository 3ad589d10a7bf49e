/**
 * Tests that need OpenSSH's own tools. Outside CI a missing tool makes the suite say SKIPPED
 * loudly; under CI=true it is a failing test instead, never a silent skip.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'vitest';

const SEARCH = ['/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/local/bin', '/usr/local/sbin'];

export function findTool(name: string): string | undefined {
  for (const dir of SEARCH) {
    const p = `${dir}/${name}`;
    if (existsSync(p)) return p;
  }
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export const inCI = process.env.CI === 'true';

/** describe() that runs only when every tool exists; loud skip locally, failure under CI. */
export function describeWithTools(tools: string[], name: string, body: () => void, installHint = 'apt-get install -y openssh-server openssh-client'): void {
  const missing = tools.filter((t) => !findTool(t));
  if (missing.length === 0) {
    describe(name, body);
    return;
  }
  const why = `needs ${missing.join(', ')} (${installHint})`;
  if (inCI) {
    describe(name, () => {
      it(`has the tools it needs`, () => {
        throw new Error(`${name}: ${why} — missing under CI is a failure`);
      });
    });
    return;
  }
  console.warn(`\n*** SKIPPED: ${name}: ${why} ***\n`);
  describe.skipIf(true)(`${name} [SKIPPED: ${why}]`, body);
}
