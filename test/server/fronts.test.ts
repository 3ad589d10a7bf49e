/**
 * `frontends: N`: front processes run TLS and HTTP, the daemon decides. A client sees the same
 * API either way (the same answers to the same requests, errors included), the client's address
 * reaches the audit as the front saw it (a client cannot name its own), a front that dies is
 * replaced while the others serve, and closing the daemon ends every front.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../../src/daemon.js';
import { makeEnv, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { captureLog, freshPublicLine, staticTokens } from '../reliability/support.js';
import { describeWithTools } from '../helpers/tools.js';
import { pino } from 'pino';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

interface Answer {
  status: number;
  type: string | null;
  retryAfter: string | null;
  /** headers the web pages and caches depend on */
  location: string | null;
  cacheControl: string | null;
  csp: string | null;
  body: unknown;
}

async function send(url: string, method: string, path: string, init: { headers?: Record<string, string>; body?: string | Uint8Array } = {}): Promise<Answer> {
  const res = await fetch(url + path, { method, headers: init.headers, body: init.body as BodyInit | undefined, redirect: 'manual' });
  const text = res.headers.get('content-type')?.startsWith('application/octet-stream') ? `${(await res.arrayBuffer()).byteLength > 0}` : await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // text/plain answers stay text
  }
  const h = (name: string) => res.headers.get(name);
  return { status: res.status, type: h('content-type'), retryAfter: h('retry-after'), location: h('location'), cacheControl: h('cache-control'), csp: h('content-security-policy'), body };
}

/** What may differ between two daemons answering the same request: ids, keys, serials, times. */
function shape(a: Answer): unknown {
  a = { ...a, body: JSON.parse(JSON.stringify(a.body, (k, v) => (k === 'requestId' ? 'req_…' : k === 'ca' ? 'SHA256:…' : v))) };
  if (a.status === 201 || a.status === 202) {
    const b = a.body as Record<string, unknown>;
    return { status: a.status, type: a.type, keys: Object.keys(b).sort(), state: b.status, principals: b.principals };
  }
  return a;
}

describe('front processes answer as the daemon does', () => {
  const t = staticTokens(['alice', 'mallory']);
  const envs: TestEnv[] = [];
  const daemons: RunningDaemon[] = [];

  beforeAll(async () => {
    for (const frontends of [0, 2]) {
      const env = makeEnv({ tokens: t.yaml, config: `frontends: ${frontends}\nlimits: { requestsPerMinute: 4 }\n` });
      envs.push(env);
      daemons.push(await startTestDaemon(env));
    }
  });
  afterAll(async () => {
    const pids = daemons.flatMap((d) => d.frontendPids());
    for (const d of daemons) await d.close();
    for (const e of envs) e.cleanup();
    // closing the daemon ends its fronts
    expect(pids.length).toBe(2);
    for (const pid of pids) expect(alive(pid), `front ${pid} still running`).toBe(false);
  });

  it('ok/the same requests get the same answers, with and without fronts', async () => {
    const [inProcess, withFronts] = daemons;
    expect(inProcess.frontendPids()).toEqual([]);
    expect(withFronts.frontendPids()).toHaveLength(2);
    const json = { 'content-type': 'application/json' };
    const as = (user: string) => ({ ...json, authorization: `Bearer ${t.byUser[user]}` });
    const issue = (extra: Record<string, unknown> = {}) => JSON.stringify({ target: 'prod-db', task: 'check-logs', publicKey: freshPublicLine(), ...extra });
    const cases: Array<[string, string, { headers?: Record<string, string>; body?: string | Uint8Array }]> = [
      ['POST', '/v1/requests', { headers: json, body: issue() }], // no bearer
      ['POST', '/v1/requests', { headers: { ...json, authorization: 'Bearer nope' }, body: issue() }],
      ['POST', '/v1/requests', { headers: as('alice'), body: '{"target":' }],
      ['POST', '/v1/requests', { headers: as('alice'), body: '"just a string"' }],
      ['POST', '/v1/requests', { headers: as('alice'), body: issue({ pad: 'x'.repeat(70 * 1024) }) }],
      ['POST', '/v1/requests', { headers: { ...as('alice'), 'content-encoding': 'gzip' }, body: gzipSync(issue()) }],
      ['POST', '/v1/requests', { headers: { ...as('alice'), 'content-type': 'application/json; charset=latin1' }, body: issue() }],
      ['POST', '/v1/requests', { headers: as('alice'), body: JSON.stringify({ target: 'prod-db' }) }],
      ['POST', '/v1/requests', { headers: as('alice'), body: issue({ target: 'no-such-target' }) }],
      ['POST', '/v1/requests', { headers: as('mallory'), body: issue() }], // no rule lets an intern in
      ['POST', '/v1/requests', { headers: as('alice'), body: issue() }],
      ['POST', '/V1/Requests/', { headers: as('alice'), body: issue() }], // express's matching, both ways
      ['POST', '/v1/requests', { headers: as('alice'), body: issue() }],
      ['POST', '/v1/requests', { headers: as('alice'), body: issue() }],
      ['POST', '/v1/requests', { headers: as('alice'), body: issue() }], // over limits.requestsPerMinute: 429 + Retry-After
      ['GET', '/v1/requests', { headers: as('mallory') }],
      ['GET', '/v1/nope', {}],
      ['GET', '/healthz', {}],
      ['HEAD', '/healthz', {}],
      ['GET', '/v1/targets', { headers: as('alice') }],
      ['GET', '/v1/audit', { headers: as('alice') }], // not an auditor
      ['GET', '/v1/openapi.json', {}],
      ['GET', '/v1/krl', {}], // binary: compared by status, type and non-empty
      ['GET', '/', {}], // the web pages: a redirect, static files, a page that wants a session
      ['GET', '/ui/static/app.css', {}],
      ['GET', '/ui/static/app.js', {}],
      ['GET', '/ui/', {}],
      ['POST', '/v1/auth/challenge', { headers: json, body: '{"user":' }],
    ];
    const seen = new Set<number>();
    for (const [method, path, init] of cases) {
      const a = await send(inProcess.url, method, path, init);
      const b = await send(withFronts.url, method, path, init);
      seen.add(a.status);
      expect(shape(b), `${method} ${path} ${String(init.body).slice(0, 40)}`).toEqual(shape(a));
    }
    // the cases reach every kind of answer (so "equal" is not "equal and empty")
    expect([...seen].sort()).toEqual([200, 201, 303, 400, 401, 403, 404, 413, 415, 429]);
  });
});

describe('front processes: the client address, a front dying', () => {
  const t = staticTokens(['alice']);
  let env: TestEnv;
  let d: RunningDaemon;

  beforeAll(async () => {
    env = makeEnv({ tokens: t.yaml, config: 'frontends: 2\n' });
    d = await startTestDaemon(env);
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  it("fail/a client cannot name its own address: the audit has the front's peer", async () => {
    const res = await send(d.url, 'POST', '/v1/requests', {
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.byUser.alice}`, 'x-jit-peer': '203.0.113.66' },
      body: JSON.stringify({ target: 'prod-db', task: 'incident', ticket: 'INC-7', publicKey: freshPublicLine() }),
    });
    expect(res.status).toBe(202); // waits for an approver: its `request` record names the address
    const id = (res.body as { id: string }).id;
    const rec = (await d.deps.audit.tail(0, 1000)).find((r) => r.type === 'request' && r.id === id);
    expect(rec?.sourceAddress).toBe('127.0.0.1');
  });

  it('ok/a front killed mid-run is replaced; the other one serves meanwhile', async () => {
    const [victim, survivor] = d.frontendPids();
    process.kill(victim, 'SIGKILL');
    const issue = () =>
      send(d.url, 'POST', '/v1/requests', {
        headers: { 'content-type': 'application/json', authorization: `Bearer ${t.byUser.alice}` },
        body: JSON.stringify({ target: 'prod-db', task: 'check-logs', publicKey: freshPublicLine() }),
      });
    await sleep(100);
    for (let i = 0; i < 4; i++) expect((await issue()).status).toBe(201);
    const deadline = Date.now() + 10_000;
    while (d.frontendPids().length < 2 && Date.now() < deadline) await sleep(100);
    const now = d.frontendPids();
    expect(now).toHaveLength(2);
    expect(now).toContain(survivor);
    expect(now).not.toContain(victim);
    for (let i = 0; i < 4; i++) expect((await issue()).status).toBe(201);
    const metrics = (await send(d.url, 'GET', '/metrics')).body as string;
    expect(metrics).toMatch(/^jitssh_frontend_restarts_total 1$/m);
    expect(metrics).toMatch(/^jitssh_frontends 2$/m);
  });

  it('fail/a data dir that cannot be opened refuses the start; the fronts forked ahead are ended', async () => {
    const before = childPids();
    const notADir = join(env.dir, 'not-a-dir');
    writeFileSync(notADir, 'a file');
    await expect(startDaemon({ configPath: env.configPath, dataDir: notADir, log: pino({ level: 'silent' }) })).rejects.toThrow();
    await sleep(300);
    expect(childPids().filter((p) => !before.includes(p) && alive(p))).toEqual([]);
  });

  it('fail/a port already taken refuses the start with the listen error; no front is left running', async () => {
    const before = childPids();
    const taken = new URL(d.url).port;
    await expect(startDaemon({ configPath: env.configPath, listen: `127.0.0.1:${taken}`, dataDir: join(env.dir, 'second'), log: pino({ level: 'silent' }) })).rejects.toThrow(
      /cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/,
    );
    await sleep(200);
    expect(childPids().filter((p) => !before.includes(p) && alive(p))).toEqual([]);
  });
});

describeWithTools(['openssl'], 'front processes over TLS', () => {
  let env: TestEnv;
  let d: RunningDaemon | undefined;
  let cert: string;

  beforeAll(() => {
    env = makeEnv({ users: { alice: ['oncall'] }, config: 'frontends: 1\n' });
    const [certFile, keyFile] = [join(env.dir, 'tls.crt'), join(env.dir, 'tls.key')];
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
    cert = readFileSync(certFile, 'utf8');
    writeFileSync(env.configPath, `${readFileSync(env.configPath, 'utf8')}tls: { cert: ${certFile}, key: ${keyFile} }\n`);
  });
  afterAll(async () => {
    await d?.close();
    env?.cleanup();
  });

  it('ok/the fronts serve the configured certificate; proxied and hot routes both answer', async () => {
    d = await startTestDaemon(env);
    expect(d.url).toMatch(/^https:/);
    const get = (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        httpsRequest(`${d!.url}${path}`, { ca: cert }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        })
          .on('error', reject)
          .end();
      });
    expect(JSON.parse((await get('/healthz')).body).ok).toBe(true);
    expect((await get('/v1/ca')).body).toContain('ssh-ed25519 ');
  });

  it('ok/a front that cannot start again is retried (logged) until it can', async () => {
    const certFile = join(env.dir, 'tls.crt');
    const good = readFileSync(certFile, 'utf8');
    const captured = captureLog();
    await d?.close();
    d = await startDaemon({ configPath: env.configPath, log: captured.log });
    const [first] = d.frontendPids();
    writeFileSync(certFile, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
    process.kill(first, 'SIGKILL');
    let deadline = Date.now() + 10_000;
    while (!captured.text().includes('front process did not start') && Date.now() < deadline) await sleep(100);
    expect(captured.text()).toContain('front process ended; starting a new one');
    expect(captured.text()).toContain('front process did not start');
    expect(d.frontendPids()).toEqual([]);
    writeFileSync(certFile, good);
    deadline = Date.now() + 10_000;
    while (d.frontendPids().length === 0 && Date.now() < deadline) await sleep(100);
    expect(d.frontendPids()).toHaveLength(1);
    expect(d.frontendPids()).not.toContain(first);
  });

  it('fail/a certificate the fronts cannot load refuses the start, in one line, with no process left', async () => {
    await d?.close();
    d = undefined;
    const certFile = join(env.dir, 'tls.crt');
    writeFileSync(certFile, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
    const before = childPids();
    await expect(startDaemon({ configPath: env.configPath, log: pino({ level: 'silent' }) })).rejects.toThrow(/front process/);
    await sleep(200);
    expect(childPids().filter((p) => !before.includes(p) && alive(p))).toEqual([]);
  });
});

/** This process's children (the test runner's own included), from /proc. */
function childPids(): number[] {
  try {
    return readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
