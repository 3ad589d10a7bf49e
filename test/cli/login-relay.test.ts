/**
 * Issue 11.1, the login relay, end to end with the built CLI: a rogue server that relays the
 * real daemon's challenge gets no signature (the CLI sees the challenge names another server),
 * and a server whose CA key changed behind the same URL is refused until --reset-server-key.
 * Plain http beyond loopback is refused without --insecure-http.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pino } from 'pino';
import { startDaemon, type RunningDaemon } from '../../src/daemon.js';
import { makeEnv, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';
import { baseEnv, ensureBuilt, runCli } from './run-cli.js';

/** An HTTP server that forwards every call to `upstream()` and records the paths it saw. */
async function relay(upstream: () => string): Promise<{ url: string; seen: string[]; server: Server }> {
  const seen: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      seen.push(`${req.method} ${req.url}`);
      const headers: Record<string, string> = {};
      for (const h of ['content-type', 'authorization', 'accept']) if (req.headers[h]) headers[h] = String(req.headers[h]);
      try {
        const r = await fetch(upstream() + req.url, { method: req.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined });
        res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' });
        res.end(Buffer.from(await r.arrayBuffer()));
      } catch {
        res.writeHead(502).end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

describeWithTools(['ssh-keygen'], 'jit-ssh login is bound to the server (login relay)', () => {
  let env: TestEnv;
  let a: RunningDaemon;
  let b: RunningDaemon;
  let upstream = '';
  let front: Awaited<ReturnType<typeof relay>>;
  let rogue: Awaited<ReturnType<typeof relay>>;
  let homeN = 0;
  const home = () => {
    const h = join(env.dir, `home${++homeN}`);
    mkdirSync(h);
    return h;
  };
  const as = (h: string, server: string) => baseEnv(h, { JITSSH_SERVER: server, JITSSH_USER: 'alice', JITSSH_IDENTITY: env.keys.alice.path });

  beforeAll(async () => {
    ensureBuilt();
    env = makeEnv();
    // The front door both CAs are published behind (a load balancer): their publicUrl.
    front = await relay(() => upstream);
    writeFileSync(env.configPath, readFileSync(env.configPath, 'utf8') + `publicUrl: ${front.url}\n`);
    a = await startDaemon({ configPath: env.configPath, log: pino({ level: 'silent' }) });
    // Another CA (own data dir, own CA key and secret) with the same users, behind the same URL.
    b = await startDaemon({ configPath: env.configPath, dataDir: join(env.dir, 'data-b'), log: pino({ level: 'silent' }) });
    upstream = a.url;
    // The attacker's server: it relays the real CA's challenge, hoping to get alice's signature.
    rogue = await relay(() => a.url);
  });
  afterAll(async () => {
    front?.server.close();
    rogue?.server.close();
    await a?.close();
    await b?.close();
    env?.cleanup();
  });

  it('ok/login through the public URL works and pins the CA key', async () => {
    const h = home();
    const r = await runCli(['targets', '--json'], as(h, front.url));
    expect(r.code, r.stderr).toBe(0);
    const pins = readFileSync(join(h, '.ssh/jit/known-servers'), 'utf8');
    expect(pins).toContain(`${front.url} ${a.deps.ca.active().fingerprint}`);
  });

  it('fail/a rogue server relaying the real challenge gets no signature and no token', async () => {
    const h = home();
    const before = (await a.deps.audit.tail(0, 100_000)).filter((x) => x.type === 'auth').length;
    const r = await runCli(['targets', '--json'], as(h, rogue.url));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`refusing to sign: ${rogue.url} sent a login challenge of another server (${front.url})`);
    // The rogue asked the real CA for a challenge, but never had a signature to pass on.
    expect(rogue.seen).toContain('POST /v1/auth/challenge');
    expect(rogue.seen.some((s) => s.startsWith('POST /v1/auth/token'))).toBe(false);
    const after = (await a.deps.audit.tail(0, 100_000)).filter((x) => x.type === 'auth').length;
    expect(after).toBe(before);
  });

  it('fail/a changed CA key behind the same URL is refused; --reset-server-key accepts it', async () => {
    const h = home();
    expect((await runCli(['targets', '--json'], as(h, front.url))).code).toBe(0);
    upstream = b.url; // the URL now reaches another CA (a takeover, or an admin's new deployment)
    try {
      const refused = await runCli(['targets', '--json'], as(h, front.url));
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(`the CA key of ${front.url} changed (pinned ${a.deps.ca.active().fingerprint}, now ${b.deps.ca.active().fingerprint})`);
      expect(refused.stderr).toContain('--reset-server-key');
      const reset = await runCli(['targets', '--json', '--reset-server-key'], as(h, front.url));
      expect(reset.code, reset.stderr).toBe(0);
      expect(readFileSync(join(h, '.ssh/jit/known-servers'), 'utf8')).toContain(`${front.url} ${b.deps.ca.active().fingerprint}`);
      expect((await runCli(['targets', '--json'], as(h, front.url))).code).toBe(0);
    } finally {
      upstream = a.url;
    }
  });

  it('fail/plain http beyond loopback is refused without --insecure-http (a 127.* name is not loopback)', async () => {
    for (const server of ['http://ca.example.com:7422', 'http://127.attacker.example:7422']) {
      const r = await runCli(['targets', '--json'], baseEnv(home(), { JITSSH_SERVER: server, JITSSH_TOKEN: 'x' }));
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`refusing plain http to ${server}`);
      expect(r.stderr).toContain('--insecure-http');
    }
  });
});
