/**
 * krl-sync.sh's rollback guard with KRL versions past 2^63 (issue 11.5): bash integer tests
 * overflow there, error out, and used to let an older KRL through. Real ssh-keygen KRLs from a
 * tiny fake CA; the comparison functions are also run straight from the script's own text.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sshKeygen } from '../helpers/keys.js';
import { describeWithTools } from '../helpers/tools.js';
import { KRL_SYNC, run } from './helpers/hosts.js';

const TWO_63 = '9223372036854775808';
const U64_MAX = '18446744073709551615';

/** Runs a bash snippet with the script's u64 helpers (the text between its u64 markers) loaded. */
function u64(snippet: string): number {
  const script = readFileSync(KRL_SYNC, 'utf8');
  const helpers = /^# u64-begin[^\n]*\n([\s\S]*?)^# u64-end$/m.exec(script)?.[1];
  if (!helpers) throw new Error('krl-sync.sh lost its u64-begin/u64-end markers');
  try {
    execFileSync('bash', ['-c', `set -eu\n${helpers}\n${snippet}`], { stdio: 'pipe' });
    return 0;
  } catch (e) {
    return (e as { status: number }).status;
  }
}

it('u64 helpers: parse only canonical unsigned 64-bit decimals and order them past 2^63', () => {
  for (const good of ['0', '1', '7', TWO_63, U64_MAX]) expect(u64(`is_u64 '${good}'`), good).toBe(0);
  for (const bad of ['', '-1', '+1', '01', '1e3', '12abc', ' 7', '0x10', '18446744073709551616', '99999999999999999999', '1'.repeat(21)]) {
    expect(u64(`is_u64 '${bad}'`), JSON.stringify(bad)).not.toBe(0);
  }
  const lt: [string, string][] = [['3', '7'], ['7', TWO_63], ['9223372036854775807', TWO_63], [TWO_63, U64_MAX], ['0', U64_MAX]];
  for (const [a, b] of lt) {
    expect(u64(`u64_lt ${a} ${b}`), `${a} < ${b}`).toBe(0);
    expect(u64(`u64_lt ${b} ${a}`), `not ${b} < ${a}`).not.toBe(0);
  }
  expect(u64(`u64_lt ${TWO_63} ${TWO_63}`)).not.toBe(0);
});

describeWithTools(['ssh-keygen', 'curl'], 'krl-sync.sh: rollback guard with 64-bit KRL versions', () => {
  let work: string;
  let server: Server;
  let url: string;
  let body: Buffer = Buffer.alloc(0);
  const krlOf = (v: string) => {
    const f = join(work, `v${v}.krl`);
    sshKeygen(['-k', '-f', f, '-z', v, '/dev/null']);
    return readFileSync(f);
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'jit-krlver-'));
    server = createServer((_req, res) => res.writeHead(200).end(body));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    rmSync(work, { recursive: true, force: true });
  });

  it('an older KRL is refused when the installed version is ≥ 2^63, and a newer one installs', async () => {
    const dir = mkdtempSync(join(work, 'sync-'));
    const krl = join(dir, 'revoked.krl');
    const args = ['--server', url, '--krl', krl, '--state-dir', join(dir, 'state')];
    body = krlOf(TWO_63);
    expect((await run('bash', [KRL_SYNC, ...args])).code).toBe(0);
    expect(sshKeygen(['-Q', '-l', '-f', krl])).toContain(`# KRL version ${TWO_63}`);

    // The attack: replay an old (say empty) KRL after the version passed 2^63.
    body = krlOf('5');
    const old = await run('bash', [KRL_SYNC, ...args]);
    expect(old.code).toBe(1);
    expect(old.stderr).toContain(`KRL version 5, older than the installed ${TWO_63}`);
    expect(old.stderr).not.toMatch(/integer expression expected/);
    expect(sshKeygen(['-Q', '-l', '-f', krl])).toContain(`# KRL version ${TWO_63}`);

    body = krlOf(U64_MAX);
    const newer = await run('bash', [KRL_SYNC, ...args]);
    expect(newer.code, newer.stderr).toBe(0);
    expect(sshKeygen(['-Q', '-l', '-f', krl])).toContain(`# KRL version ${U64_MAX}`);

    body = krlOf(TWO_63);
    const back = await run('bash', [KRL_SYNC, ...args]);
    expect(back.code).toBe(1);
    expect(sshKeygen(['-Q', '-l', '-f', krl])).toContain(`# KRL version ${U64_MAX}`);
  });
});
