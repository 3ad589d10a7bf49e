/**
 * Webhooks: a JSON POST with a Slack-compatible `text` to a loopback receiver on pending,
 * approved, denied and revoked; a hanging, failing or dead receiver never slows or fails the
 * request, and a webhook_failure audit record appears once the retries are spent.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { api, makeEnv, startTestDaemon, subjectKey, type TestEnv } from '../helpers/daemon.js';
import { describeWithTools } from '../helpers/tools.js';
import { auditRecords, requestAccess, sessions, waitFor, type Session } from './support.js';

interface Hit {
  event: string;
  text: string;
  request: { id: string; [k: string]: unknown };
  contentType: string | undefined;
}

type Mode = 'ok' | 'hang' | 'fail';

/** A webhook receiver on 127.0.0.1:0 whose behaviour the test switches. */
async function startReceiver() {
  const hits: Hit[] = [];
  const state = { mode: 'ok' as Mode };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const parsed = JSON.parse(body);
      hits.push({ ...parsed, contentType: req.headers['content-type'] });
      if (state.mode === 'hang') return; // never answers
      res.statusCode = state.mode === 'ok' ? 200 : 500;
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    hits,
    set mode(m: Mode) {
      state.mode = m;
    },
    of: (id: string, event?: string) => hits.filter((h) => h.request.id === id && (!event || h.event === event)),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A port nobody listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const TIMEOUT_MS = 1000; // config webhook.timeout: 1s

describeWithTools(['ssh-keygen'], 'webhooks', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let tok: Session;
  let rx: Awaited<ReturnType<typeof startReceiver>>;

  beforeAll(async () => {
    rx = await startReceiver();
    const dead = await closedPort();
    env = makeEnv({
      config: `webhook: { url: "${rx.url}", timeout: 1s, retries: 1 }\n`,
      targets: '  dead-db: { hosts: [127.0.0.1], accounts: [postgres] }\n',
      rules: `
  - name: dead-hook
    groups: [dba]
    targets: [dead-db]
    tasks: [incident]
    approval: { approvers: [sre-leads], count: 1 }
    webhook: http://127.0.0.1:${dead}/hook
`,
    });
    d = await startTestDaemon(env);
    tok = sessions(d, env);
  });
  afterAll(async () => {
    await d?.close();
    await rx?.close();
    env?.cleanup();
  });

  const failures = (id: string) => auditRecords(env).filter((r) => r.type === 'webhook_failure' && r.id === id);

  /** A pending incident request by dave, approved by bob. */
  async function pendingThenApproved(target: string, ticket: string) {
    const r = await requestAccess(d, env, await tok('dave'), { target, task: 'incident', ticket });
    const a = await api(d.url, 'POST', `/v1/requests/${r.body.id}/approve`, { comment: 'ok' }, await tok('bob'));
    return { id: r.body.id as string, pending: r, approved: a };
  }

  /** Times only the HTTP call: the subject key is made before the clock starts. */
  async function timedRequest(target: string, ticket: string) {
    const token = await tok('dave');
    const key = subjectKey(env, `hook-${ticket}`);
    const t = performance.now();
    const r = await api(d.url, 'POST', '/v1/requests', { target, task: 'incident', ticket, publicKey: key.publicLine }, token);
    return { r, ms: performance.now() - t };
  }

  it('ok/pending, approved, denied and revoked are POSTed as JSON with a Slack-compatible text', async () => {
    rx.mode = 'ok';
    const p = await pendingThenApproved('prod-db', 'INC-100');
    expect(p.pending.status).toBe(202);
    expect(p.approved.body.status).toBe('issued');
    const [pending] = await waitFor('pending hook', () => rx.of(p.id, 'pending').length === 1 && rx.of(p.id, 'pending'));
    expect(pending.contentType).toMatch(/^application\/json/);
    expect(pending.text).toBe(`jit-ssh: dave → postgres@prod-db for task incident (INC-100) needs approval from sre-leads: jit-ssh approve ${p.id}`);
    expect(pending.request).toMatchObject({ id: p.id, user: 'dave', target: 'prod-db', task: 'incident', ticket: 'INC-100' });
    const [approved] = await waitFor('approved hook', () => rx.of(p.id, 'approved').length === 1 && rx.of(p.id, 'approved'));
    expect(approved.text).toMatch(new RegExp(`request ${p.id} approved: dave → postgres@prod-db`));
    expect(approved.request.status).toBe('issued');

    await api(d.url, 'POST', `/v1/requests/${p.id}/revoke`, {}, await tok('dave'));
    await waitFor('revoked hook', () => rx.of(p.id, 'revoked').length === 1);

    const q = await requestAccess(d, env, await tok('dave'), { target: 'prod-db', task: 'incident', ticket: 'INC-101' });
    await api(d.url, 'POST', `/v1/requests/${q.body.id}/deny`, { reason: 'no' }, await tok('bob'));
    const [denied] = await waitFor('denied hook', () => rx.of(q.body.id, 'denied').length === 1 && rx.of(q.body.id, 'denied'));
    expect(denied.text).toMatch(/denied/);
    expect(failures(p.id)).toEqual([]);
  });

  it('ok/a hanging receiver delays neither the pending answer nor issuance; webhook_failure after the retries', async () => {
    rx.mode = 'ok';
    // Baseline with a receiver that answers at once (warm-up first).
    await timedRequest('prod-db', 'INC-200');
    const normal = await timedRequest('prod-db', 'INC-201');
    expect(normal.r.status).toBe(202);

    rx.mode = 'hang';
    const hung = await timedRequest('prod-db', 'INC-202');
    expect(hung.r.status).toBe(202);
    const id = hung.r.body.id as string;
    await waitFor('the receiver to see the pending hook', () => rx.of(id, 'pending').length === 1);
    const t = performance.now();
    const a = await api(d.url, 'POST', `/v1/requests/${id}/approve`, {}, await tok('bob'));
    const approveMs = performance.now() - t;
    expect(a.status).toBe(200);
    expect(a.body.status).toBe('issued');

    // Blocking on the webhook would cost at least the 1 s timeout.
    const budget = Math.min(TIMEOUT_MS / 2, normal.ms + 300);
    expect(hung.ms, `pending took ${hung.ms} ms, a normal one ${normal.ms} ms`).toBeLessThan(budget);
    expect(approveMs, `approval took ${approveMs} ms`).toBeLessThan(budget);

    const recs = await waitFor('two webhook_failure records', () => failures(id).length === 2 && failures(id), 8000);
    expect(recs.map((r) => r.event).sort()).toEqual(['approved', 'pending']);
    for (const r of recs) expect(r.error).toBe('timeout');
    // retries: 1 → two attempts per event.
    expect(rx.of(id, 'pending')).toHaveLength(2);
    expect(rx.of(id, 'approved')).toHaveLength(2);
  });

  it('ok/a receiver answering 500 is retried, then audited with the status', async () => {
    rx.mode = 'fail';
    const r = await requestAccess(d, env, await tok('dave'), { target: 'prod-db', task: 'incident', ticket: 'INC-300' });
    expect(r.status).toBe(202);
    const [rec] = await waitFor('webhook_failure', () => failures(r.body.id).length === 1 && failures(r.body.id));
    expect(rec).toMatchObject({ event: 'pending', error: 'HTTP 500' });
    expect(rx.of(r.body.id, 'pending')).toHaveLength(2);
  });

  it("ok/a dead receiver (closed port, the rule's own webhook) does not slow or fail issuance", async () => {
    rx.mode = 'ok';
    const normal = await timedRequest('prod-db', 'INC-400');
    const dead = await timedRequest('dead-db', 'INC-401');
    expect(dead.r.status).toBe(202);
    const id = dead.r.body.id as string;
    expect(dead.ms).toBeLessThan(Math.min(TIMEOUT_MS / 2, normal.ms + 300));
    const t = performance.now();
    const a = await api(d.url, 'POST', `/v1/requests/${id}/approve`, {}, await tok('bob'));
    expect(performance.now() - t).toBeLessThan(TIMEOUT_MS / 2);
    expect(a.body.status).toBe('issued');
    const recs = await waitFor('webhook_failure for pending and approved', () => failures(id).length === 2 && failures(id));
    for (const rec of recs) expect(rec.error).toBe('ECONNREFUSED');
    // The rule's webhook replaces the global one: the loopback receiver heard nothing of it.
    expect(rx.of(id)).toEqual([]);
  });
});
