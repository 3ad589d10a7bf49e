/**
 * scripts/host-setup.sh and scripts/krl-sync.sh on their own: idempotence by checksum, the
 * sshd_config block, rollback when sshd -t rejects the edit, fail-safe order (sshd_config is
 * never pointed at a KRL that is not there), and the sync's ETag / rollback rules. The real
 * daemon where the contract matters, a tiny fake CA where a broken one is the point.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { REPO, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { generateKey, sshKeygen } from '../helpers/keys.js';
import { describeWithTools, findTool } from '../helpers/tools.js';
import { HOST_SETUP, KRL_SYNC, hostSetup, makeHostRoot, run, sha256File, treeSums, type TestHost } from './helpers/hosts.js';
import { makeE2eEnv } from './helpers/policy.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

describeWithTools(['sshd', 'ssh-keygen', 'curl'], 'e2e: host-setup.sh and krl-sync.sh', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let work: string;
  let fake: Server;
  let fakeUrl: string;
  let handle: Handler = (_q, res) => res.writeHead(500).end();
  const hosts: TestHost[] = [];
  const newHost = (name: string) => {
    const h = makeHostRoot(name);
    hosts.push(h);
    return h;
  };
  /** A KRL ssh-keygen made, with the given version number. */
  const krlVersion = (v: number) => {
    const f = join(work, `v${v}.krl`);
    sshKeygen(['-k', '-f', f, '-z', String(v), '/dev/null']);
    return readFileSync(f);
  };
  let caLine: string;
  /** A fake CA: host config with the given accounts, a valid CA key, and `krl()` as the KRL. */
  const fakeCa = (accounts: string[], krl: () => Buffer | null): Handler => (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/v1/host-config') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(['# fake', ...accounts.map((a) => `principal\t${a}\t${a}@fake`)].join('\n') + '\n');
    } else if (path === '/v1/ca') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(caLine + '\n');
    } else if (path === '/v1/krl') {
      const body = krl();
      if (body === null) res.writeHead(503).end('{"error":{"code":"unavailable","message":"down"}}');
      else res.writeHead(200, { etag: `"fake-${body.length}"` }).end(body);
    } else res.writeHead(404).end();
  };

  beforeAll(async () => {
    env = makeE2eEnv();
    d = await startTestDaemon(env);
    work = mkdtempSync(join(tmpdir(), 'jit-hostsetup-'));
    caLine = generateKey(work, 'fake-ca', 'ed25519').publicLine;
    fake = createServer((req, res) => handle(req, res));
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', () => r()));
    fakeUrl = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    fake?.close();
    await d?.close();
    for (const h of hosts) h.cleanup();
    if (work) rmSync(work, { recursive: true, force: true });
    env?.cleanup();
  });

  it('ok/a second run changes nothing (every file by checksum, mode and owner)', async () => {
    const h = newHost('idem');
    const original = readFileSync(h.sshdConfig, 'utf8');
    const first = await hostSetup(h, d.url, 'e2e-a');
    expect(first.code, first.stderr).toBe(0);
    // Sync bookkeeping (last-success time, lock) legitimately moves; everything sshd reads must not.
    const skipState = (rel: string) => rel.startsWith('var/lib/jit-ssh') || rel === 'var/lib';
    const before = treeSums(h.root, skipState);
    const second = await hostSetup(h, d.url, 'e2e-a');
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/done: 0 change\(s\)/);
    expect(second.stdout).not.toMatch(/ (created|updated|synced|removed) /);
    expect(treeSums(h.root, skipState)).toEqual(before);

    // The block sits once, at the top (before the Match), and the rest of the file is untouched.
    const cfg = readFileSync(h.sshdConfig, 'utf8');
    expect(cfg.match(/# BEGIN jit-ssh/g)).toHaveLength(1);
    expect(cfg.startsWith('# BEGIN jit-ssh')).toBe(true);
    expect(cfg.endsWith(original)).toBe(true);
    expect(readFileSync(`${h.sshdConfig}.jit-ssh.bak`, 'utf8')).toBe(original);
    expect(cfg).toContain(`RevokedKeys ${h.etc}/revoked.krl\n`);
    expect(cfg).toContain(`AuthorizedPrincipalsFile ${h.etc}/principals/%u\n`);
    expect(cfg).toContain(`TrustedUserCAKeys ${h.etc}/ca.pub\n`);
    // No systemd here: the cron fallback, running the installed sync with its config.
    const cron = readFileSync(join(h.root, 'etc/cron.d/jit-ssh-krl-sync'), 'utf8');
    expect(cron).toContain(`* * * * * root ${h.syncBin} --config ${h.syncConf} --quiet`);
  });

  it('ok/--sync systemd writes a oneshot service and a timer', async () => {
    const h = newHost('systemd');
    const r = await hostSetup(h, d.url, 'e2e-a', ['--sync', 'systemd']);
    expect(r.code, r.stderr).toBe(0);
    const unit = readFileSync(join(h.root, 'etc/systemd/system/jit-ssh-krl-sync.service'), 'utf8');
    expect(unit).toContain(`ExecStart=${h.syncBin} --config ${h.syncConf} --quiet`);
    expect(unit).toMatch(/ProtectSystem=strict/);
    const timer = readFileSync(join(h.root, 'etc/systemd/system/jit-ssh-krl-sync.timer'), 'utf8');
    expect(timer).toMatch(/OnUnitActiveSec=60s/);
    expect(existsSync(join(h.root, 'etc/cron.d/jit-ssh-krl-sync'))).toBe(false);
    // systemd's own parser, where this machine has it (an optional tool: CI images may not).
    const analyze = findTool('systemd-analyze');
    if (analyze) {
      const units = [join(h.root, 'etc/systemd/system/jit-ssh-krl-sync.service'), join(h.root, 'etc/systemd/system/jit-ssh-krl-sync.timer')];
      const v = await run(analyze, ['verify', ...units, join(REPO, 'scripts/jit-sshd.service')]);
      // Only the absence of /opt/jit-ssh's node install on a test machine may be reported.
      const problems = (v.stdout + v.stderr).split('\n').filter((l) => l.trim() && !/is not executable|Failed to prepare filename|\/opt\/jit-ssh|node/.test(l));
      expect(problems).toEqual([]);
    }
  });

  it('ok/an account dropped from the target loses its principals file on the next run', async () => {
    const h = newHost('drop');
    handle = fakeCa(['root', 'deploy'], () => krlVersion(1));
    expect((await hostSetup(h, fakeUrl, 'fake')).code).toBe(0);
    expect(readFileSync(join(h.etc, 'principals/deploy'), 'utf8')).toBe('deploy@fake\n');
    handle = fakeCa(['root'], () => krlVersion(1));
    const r = await hostSetup(h, fakeUrl, 'fake');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/removed .*principals\/deploy/);
    expect(existsSync(join(h.etc, 'principals/deploy'))).toBe(false);
    expect(existsSync(join(h.etc, 'principals/root'))).toBe(true);
  });

  it('fail/when the first KRL sync fails, sshd_config is not touched (a missing RevokedKeys locks everyone out)', async () => {
    const h = newHost('nokrl');
    const before = sha256File(h.sshdConfig);
    handle = fakeCa(['root'], () => Buffer.from('not a krl'));
    const r = await hostSetup(h, fakeUrl, 'fake');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not a valid KRL/);
    expect(r.stderr).toMatch(/sshd_config was NOT changed/);
    expect(sha256File(h.sshdConfig)).toBe(before);
    expect(existsSync(join(h.etc, 'revoked.krl'))).toBe(false);
  });

  it('fail/an unknown target and an unreachable server stop before any change to sshd_config', async () => {
    const h = newHost('bad');
    const before = sha256File(h.sshdConfig);
    const unknown = await hostSetup(h, d.url, 'no-such-target');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no target no-such-target/);
    const down = await hostSetup(h, 'http://127.0.0.1:1', 'e2e-a');
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/GET http:\/\/127\.0\.0\.1:1\/v1\/host-config.* failed/);
    const http = await hostSetup(h, 'http://ca.example.com:7422', 'e2e-a');
    expect(http.code).toBe(1);
    expect(http.stderr).toMatch(/refusing plain http/);
    expect(sha256File(h.sshdConfig)).toBe(before);
  });

  it('fail/when sshd -t rejects the edited sshd_config the previous file is restored byte for byte', async () => {
    const h = newHost('rollback');
    const before = readFileSync(h.sshdConfig);
    // An sshd that accepts the original config and rejects the next one it is shown.
    const bin = join(work, 'fakebin');
    const count = join(work, 'sshd-calls');
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      join(bin, 'sshd'),
      `#!/bin/sh\nn=$(cat ${count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${count}\n` +
        `if [ "$n" -ge 2 ]; then echo "${h.sshdConfig} line 2: Bad configuration option: Bogus" >&2; exit 255; fi\nexec ${findTool('sshd')} "$@"\n`,
    );
    chmodSync(join(bin, 'sshd'), 0o755);
    const r = await hostSetup(h, d.url, 'e2e-a', [], { ...process.env, PATH: `${bin}:${process.env.PATH}` });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/sshd -t rejected the new .*restored the previous one: .*Bad configuration option/);
    expect(readFileSync(h.sshdConfig).equals(before)).toBe(true);
  });

  it('ok/krl-sync: If-None-Match with the stored ETag; an older KRL version is refused unless --allow-rollback', async () => {
    const dir = mkdtempSync(join(work, 'sync-'));
    const krl = join(dir, 'revoked.krl');
    const args = ['--server', fakeUrl, '--krl', krl, '--state-dir', join(dir, 'state')];
    const seen: (string | undefined)[] = [];
    const v3 = krlVersion(3);
    let body = krlVersion(7);
    handle = (req, res) => {
      seen.push(req.headers['if-none-match'] as string | undefined);
      if (req.headers['if-none-match'] === '"v7"') res.writeHead(304).end();
      else res.writeHead(200, { etag: `"v${body === v3 ? 3 : 7}"` }).end(body);
    };
    expect((await run('bash', [KRL_SYNC, ...args])).code).toBe(0);
    expect(readFileSync(krl).equals(body)).toBe(true);
    const again = await run('bash', [KRL_SYNC, ...args]);
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/KRL unchanged/);
    expect(seen).toEqual([undefined, '"v7"']);

    // A missing file is fetched in full even though an ETag is stored.
    rmSync(krl);
    expect((await run('bash', [KRL_SYNC, ...args])).code).toBe(0);
    expect(seen[2]).toBeUndefined();
    expect(existsSync(krl)).toBe(true);

    body = v3;
    rmSync(join(dir, 'state/krl.etag'));
    const old = await run('bash', [KRL_SYNC, ...args]);
    expect(old.code).toBe(1);
    expect(old.stderr).toMatch(/KRL version 3, older than the installed 7/);
    expect(sshKeygen(['-Q', '-l', '-f', krl])).toMatch(/# KRL version 7/);
    const forced = await run('bash', [KRL_SYNC, ...args, '--allow-rollback']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(sshKeygen(['-Q', '-l', '-f', krl])).toMatch(/# KRL version 3/);
  });

  it('fail/krl-sync refuses a /v1/ca answer that is not plain CA key lines and keeps ca.pub', async () => {
    const dir = mkdtempSync(join(work, 'ca-'));
    const caFile = join(dir, 'ca.pub');
    writeFileSync(caFile, caLine + '\n');
    const args = ['--server', fakeUrl, '--krl', join(dir, 'revoked.krl'), '--ca-file', caFile, '--state-dir', join(dir, 'state')];
    for (const bad of ['', `cert-authority ${caLine}\n`, 'ssh-ed25519 AAAAnotbase64key\n', '<html>oops</html>\n']) {
      handle = (req, res) => {
        if (req.url === '/v1/krl') res.writeHead(200).end(krlVersion(1));
        else res.writeHead(200).end(bad);
      };
      const r = await run('bash', [KRL_SYNC, ...args]);
      // 2, not 1: this state dir never had a successful sync, which is also reported.
      expect({ bad, code: r.code }).toEqual({ bad, code: 2 });
      expect(r.stderr).toMatch(/v1\/ca (did not answer with CA public key lines|sent \d+ lines but ssh-keygen reads)/);
      expect(readFileSync(caFile, 'utf8')).toBe(caLine + '\n');
    }
  });

  it('ok/both scripts print usage with --help and refuse unknown options', async () => {
    for (const s of [HOST_SETUP, KRL_SYNC]) {
      const help = await run('bash', [s, '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/--server/);
      const bad = await run('bash', [s, '--bogus']);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/unknown option --bogus/);
    }
  });
});
