/**
 * Issue 10.5, connection exhaustion, as an attack with a bounded load: half-sent requests from
 * other loopback addresses (127.0.0.2 …) while the legitimate client on 127.0.0.1 approves,
 * revokes and checks health. One attacking address is held to connections.perAddress; many
 * together fill connections.max, beyond which only health checks are served; the server drops
 * every half-sent request after headersTimeout, and service comes back by itself. The same with
 * front processes (`frontends: 2`): the daemon admits every connection, so the caps count
 * connections across fronts.
 */
import { get as httpGet } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { api, makeEnv, startTestDaemon, type TestEnv } from '../helpers/daemon.js';
import { freshPublicLine, staticTokens } from './support.js';

const MAX = 40;
const PER_ADDRESS = 10;
const RESERVE = 5;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens `n` connections from `localAddress` that send half a request and then stall. */
async function slowloris(port: number, localAddress: string, n: number): Promise<{ sockets: Socket[]; open(): number }> {
  const sockets: Socket[] = [];
  let closed = 0;
  await Promise.all(
    Array.from({ length: n }, () => new Promise<void>((resolve) => {
      const s = connect({ host: '127.0.0.1', port, localAddress }, () => {
        s.write('POST /v1/requests HTTP/1.1\r\nHost: ca\r\nContent-Type: application/json\r\n'); // no blank line: never done
        resolve();
      });
      s.on('error', () => resolve());
      s.on('close', () => closed++);
      s.resume(); // read the server's 408 and end, so 'close' fires
      sockets.push(s);
    })),
  );
  await sleep(200); // let the server refuse what is over the limits
  return { sockets, open: () => sockets.length - closed };
}

/** GET over a new connection of its own (no keep-alive pool). */
function freshGet(port: number, path: string, token?: string): Promise<{ status: number; body: string; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port, path, agent: false, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, retryAfter: res.headers['retry-after'] }));
    });
    req.on('error', reject);
  });
}

for (const frontends of [0, 2])
describe(`reliability: half-sent requests cannot take the CA away (frontends: ${frontends})`, () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let port: number;
  const t = staticTokens(['alice', 'bob']);
  const attacks: Socket[] = [];

  /** The legitimate client's work: a request that needs approval, approved, then revoked. */
  const approveAndRevoke = async () => {
    const req = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'incident', ticket: 'INC-1', publicKey: freshPublicLine() }, t.byUser.alice);
    expect(req.status, JSON.stringify(req.body)).toBe(202);
    const ok = await api(d.url, 'POST', `/v1/requests/${req.body.id}/approve`, {}, t.byUser.bob);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.status).toBe('issued');
    const rev = await api(d.url, 'POST', `/v1/requests/${req.body.id}/revoke`, {}, t.byUser.alice);
    expect(rev.status, JSON.stringify(rev.body)).toBe(200);
  };

  beforeAll(async () => {
    env = makeEnv({
      tokens: t.yaml,
      config: `connections: { max: ${MAX}, perAddress: ${PER_ADDRESS}, healthReserve: ${RESERVE}, headersTimeout: 4s, requestTimeout: 6s }\nfrontends: ${frontends}\n`,
    });
    d = await startTestDaemon(env);
    port = Number(new URL(d.url).port);
  });
  afterAll(async () => {
    for (const s of attacks) s.destroy();
    await d?.close();
    env?.cleanup();
  });

  it('ok/one address with 200 half-sent requests keeps only perAddress; approve, revoke and healthz still work', async () => {
    const a = await slowloris(port, '127.0.0.2', 200);
    attacks.push(...a.sockets);
    expect(a.open()).toBeLessThanOrEqual(PER_ADDRESS);
    await approveAndRevoke();
    expect((await api(d.url, 'GET', '/healthz')).status).toBe(200);
    for (const s of a.sockets) s.destroy();
    await sleep(100);
  });

  it('ok/many addresses fill connections.max: health checks still answer, the rest get 503, and all recovers after headersTimeout', async () => {
    const floods = await Promise.all(Array.from({ length: 8 }, (_, i) => slowloris(port, `127.0.0.${10 + i}`, PER_ADDRESS)));
    for (const f of floods) attacks.push(...f.sockets);
    await sleep(1500); // connections let into the reserve without a request are dropped after 1 s
    const open = floods.reduce((n, f) => n + f.open(), 0);
    expect(open).toBeGreaterThan(0);
    expect(open).toBeLessThanOrEqual(MAX);
    // New clients (fresh connections; a connection admitted before the flood keeps working).
    const health = await freshGet(port, '/healthz');
    expect(health.status).toBe(200);
    const busy = await freshGet(port, '/v1/targets', t.byUser.alice);
    expect(busy.status).toBe(503);
    expect(busy.retryAfter).toBe('5');
    expect(JSON.parse(busy.body).error.message).toContain('connections.max');
    // headersTimeout 4 s: the server itself drops every half-sent request, and service resumes.
    const deadline = Date.now() + 10_000;
    while (floods.some((f) => f.open() > 0) && Date.now() < deadline) await sleep(200);
    expect(floods.reduce((n, f) => n + f.open(), 0)).toBe(0);
    await approveAndRevoke();
  });
});


