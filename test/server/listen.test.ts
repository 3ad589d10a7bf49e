/**
 * Issue 11.11: the loopback check is one parser shared by the config file, the daemon and the
 * `--listen` override. A DNS name that merely starts with 127 is not loopback: it would serve
 * plain http wherever its owner points it.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon } from '../../src/daemon.js';
import { makeEnv, REPO, type TestEnv } from '../helpers/daemon.js';
import { ensureBuilt } from '../cli/run-cli.js';

describe('listen: loopback only by IP literal or localhost', () => {
  let env: TestEnv;
  beforeAll(() => {
    ensureBuilt();
    env = makeEnv();
  });
  afterAll(() => env?.cleanup());

  for (const listen of ['127.attacker.example:0', '127.0.0.1.nip.io:0', 'localhost.attacker.example:0', '0.0.0.0:0']) {
    it(`fail/the --listen override ${listen} without tls is refused before anything listens`, async () => {
      await expect(startDaemon({ configPath: env.configPath, listen, log: pino({ level: 'silent' }) })).rejects.toThrow(/beyond loopback/);
    });
  }

  it('fail/a malformed --listen override is refused with the config rule', async () => {
    await expect(startDaemon({ configPath: env.configPath, listen: '::1:7422', log: pino({ level: 'silent' }) })).rejects.toThrow(/not host:port/);
  });

  it('ok/127.0.0.2 and localhost are loopback', async () => {
    for (const listen of ['127.0.0.2:0', 'localhost:0']) {
      const d = await startDaemon({ configPath: env.configPath, listen, log: pino({ level: 'silent' }) });
      await d.close();
    }
  });

  it('fail/jit-sshd serve --listen 127.attacker.example:7999 exits 1 naming the rule', () => {
    const r = spawnSync(process.execPath, [join(REPO, 'dist/cli/jit-sshd.js'), 'serve', '--listen', '127.attacker.example:7999', '--config', env.configPath], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('127.attacker.example:7999 is beyond loopback');
  });
});
