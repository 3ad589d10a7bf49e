/**
 * scripts/try-local.sh is the newcomer's first five minutes: it must end in a real ssh login
 * with a jit certificate, show the revoked certificate refused, and leave nothing behind
 * (its temp dir gone, its jit-sshd and sshd stopped).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { expect, it } from 'vitest';
import { REPO } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';

describeWithTools(['ssh', 'sshd', 'ssh-keygen'], 'scripts/try-local.sh', () => {
  it('ok/first certificate login on one machine, revocation refused, everything cleaned up', () => {
    const r = spawnSync('bash', [`${REPO}/scripts/try-local.sh`], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
    const out = `${r.stdout}\n${r.stderr}`;
    expect(r.status, out).toBe(0);
    expect(r.stdout).toMatch(/certificate for local issued \(req_[A-Za-z0-9_-]{16}, task try\)/);
    // The line after step 5's heading is what the remote `echo ok` printed through sshd.
    expect(r.stdout).toMatch(/== 5\. [^\n]*\nok\n/);
    expect(r.stdout).toContain('refused, as it should be');
    const dir = /working in (\S+) /.exec(r.stdout)?.[1];
    expect(dir, out).toBeTruthy();
    expect(existsSync(dir!), `${dir} left behind`).toBe(false);
    // Both daemons ran from that dir; no process may still have it on its command line.
    const ps = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).stdout;
    expect(ps.split('\n').filter((l) => l.includes(dir!))).toEqual([]);
  }, 150_000);
});
