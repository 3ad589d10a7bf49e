/**
 * `npm test` leaves no temp dirs behind: every test process gets TMPDIR = one fresh directory
 * (os.tmpdir(), mktemp and ssh-keygen follow it), removed at the end of the run. Anything a test
 * forgot to clean up is named, so the leak gets fixed, and fails the run.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), 'jit-ssh-tests-'));
  process.env.TMPDIR = root;
  return () => {
    const left = readdirSync(root);
    rmSync(root, { recursive: true, force: true });
    if (left.length === 0) return;
    process.stderr.write(`\nFAILED: tests left ${left.length} temp entries behind (removed now): ${left.slice(0, 20).join(', ')}\n`);
    process.exitCode = 1; // vitest only logs an error thrown here

  };
}
