/**
 * Revocation end to end: revoke over HTTP → GET /v1/krl → ssh-keygen -Q and a real sshd with
 * RevokedKeys refuse the revoked certificate and accept its sibling. ETag/304, who may revoke,
 * admin revocation by user and by key fingerprint.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningDaemon } from '../../src/daemon.js';
import { api, login, makeEnv, startTestDaemon, subjectKey, type TestEnv } from '../helpers/daemon.js';
import type { TestKey } from '../helpers/keys.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import { describeWithTools, findTool } from '../helpers/tools.js';
import { auditOf, manualClock, MIN, requestAccess, sessions, type Session, type TestClock } from './support.js';

/** `ssh-keygen -Q -f krl file…` → file → 'REVOKED' | 'ok'. */
function krlQuery(krlFile: string, files: string[]): Record<string, string> {
  const r = spawnSync(findTool('ssh-keygen')!, ['-Q', '-f', krlFile, ...files], { encoding: 'utf8' });
  if (r.error) throw r.error;
  const out: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^(\S+)(?: \(.*\))?: (REVOKED|ok)$/.exec(line.trim()); // 'file (key id or comment): REVOKED'
    if (m) out[m[1]] = m[2];
  }
  for (const f of files) if (!(f in out)) throw new Error(`ssh-keygen -Q said nothing about ${f}: ${r.stdout}${r.stderr}`);
  return out;
}

describeWithTools(['ssh-keygen', 'sshd', 'ssh'], 'revocation and the KRL', () => {
  let env: TestEnv;
  let d: RunningDaemon;
  let tok: Session;
  let sshd: Sshd | undefined;
  let krlFile: string;

  beforeAll(async () => {
    env = makeEnv();
    d = await startTestDaemon(env);
    tok = sessions(d, env);
    krlFile = join(env.dir, 'revoked.krl');
  });
  afterAll(async () => {
    await sshd?.stop();
    await d?.close();
    env?.cleanup();
  });

  /** An issued certificate for `user`, written beside its key so ssh finds it. */
  async function issued(user: string, body = { target: 'prod-db', task: 'check-logs' }) {
    const r = await requestAccess(d, env, await tok(user), body);
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const certFile = `${r.key.path}-cert.pub`;
    writeFileSync(certFile, r.body.certificate + '\n');
    return { id: r.body.id as string, serial: r.body.serial as string, key: r.key as TestKey, certFile };
  }

  async function fetchKrl(etag?: string) {
    const res = await fetch(`${d.url}/v1/krl`, { headers: etag ? { 'if-none-match': etag } : {} });
    const bytes = Buffer.from(await res.arrayBuffer());
    if (res.status === 200) writeFileSync(krlFile, bytes);
    return { status: res.status, etag: res.headers.get('etag')!, version: Number(res.headers.get('x-krl-version')), bytes };
  }

  const revoke = async (user: string, id: string) => api(d.url, 'POST', `/v1/requests/${id}/revoke`, { reason: 'task done' }, await tok(user));

  it('ok/revoked cert: ssh-keygen -Q says REVOKED, sibling ok; a real sshd refuses it and accepts the sibling', async () => {
    const gone = await issued('alice');
    const kept = await issued('alice');
    const empty = await fetchKrl();
    expect(empty.status).toBe(200);
    expect(krlQuery(krlFile, [gone.certFile, kept.certFile])).toEqual({ [gone.certFile]: 'ok', [kept.certFile]: 'ok' });

    const v = await revoke('alice', gone.id);
    expect(v.status).toBe(200);
    expect(v.body).toMatchObject({ status: 'revoked', serial: gone.serial, revokedBy: 'alice' });
    // Durable before the answer: the audit already has it.
    expect(auditOf(env, gone.id).find((a) => a.type === 'revoke')).toMatchObject({ by: 'alice', serial: gone.serial, reason: 'task done' });

    const krl = await fetchKrl();
    expect(krl.status).toBe(200);
    expect(krl.version).toBeGreaterThan(empty.version);
    expect(krlQuery(krlFile, [gone.certFile, kept.certFile])).toEqual({ [gone.certFile]: 'REVOKED', [kept.certFile]: 'ok' });

    const ca = await api(d.url, 'GET', '/v1/ca');
    sshd = await startSshd({ trustedCaKeys: ca.body, principalsFor: { root: ['readonly@prod-db'] }, revokedKeysFile: krlFile });
    const ok = await sshd.runSsh(kept.key.path, kept.certFile, 'echo in');
    expect(ok.code, ok.stderr + sshd.logs()).toBe(0);
    expect(ok.stdout.trim()).toBe('in');
    const refused = await sshd.runSsh(gone.key.path, gone.certFile, 'echo in');
    expect(refused.code).not.toBe(0);
    expect(refused.stdout).toBe('');
    await sshd.waitForLog(/revoked/i);
  });

  it('ok/ETag: If-None-Match gives 304 until a new revocation changes the ETag', async () => {
    const first = await fetchKrl();
    expect(first.etag).toMatch(/^".+"$/);
    const again = await fetchKrl(first.etag);
    expect(again.status).toBe(304);
    expect(again.bytes.length).toBe(0);
    expect(again.etag).toBe(first.etag);

    const c = await issued('alice');
    expect((await fetchKrl(first.etag)).status).toBe(304); // issuing changes nothing in the KRL
    await revoke('alice', c.id);
    const changed = await fetchKrl(first.etag);
    expect(changed.status).toBe(200);
    expect(changed.etag).not.toBe(first.etag);
    expect(changed.version).toBeGreaterThan(first.version);
    expect(krlQuery(krlFile, [c.certFile])[c.certFile]).toBe('REVOKED');
    // Revoking twice is not a change.
    expect((await revoke('alice', c.id)).status).toBe(200);
    expect((await fetchKrl(changed.etag)).status).toBe(304);
  });

  it.each([
    ['ok/weak form', (e: string) => `W/${e}`, 304],
    ['ok/in a list', (e: string) => `"krl-0-000000000000", ${e}`, 304],
    ['ok/star', () => '*', 304],
    ['fail/another tag', () => '"krl-1-000000000000"', 200],
  ])('ETag If-None-Match %s', async (_name, header, want) => {
    const { etag } = await fetchKrl();
    const res = await fetch(`${d.url}/v1/krl`, { headers: { 'if-none-match': header(etag) } });
    await res.arrayBuffer();
    expect(res.status).toBe(want);
  });

  describe('expiry with an injected clock', () => {
    let env2: TestEnv;
    let d2: RunningDaemon;
    let clock: TestClock;

    beforeAll(async () => {
      env2 = makeEnv();
      clock = manualClock(Math.floor(Date.now() / 1000) * 1000);
      d2 = await startTestDaemon(env2, { clock });
    });
    afterAll(async () => {
      await d2?.close();
      env2?.cleanup();
    });

    it('ok/a revoked certificate leaves the KRL once it has expired and the pruner ran; the version still grows', async () => {
      const token = await login(d2.url, 'alice', env2.keys.alice);
      const r = await requestAccess(d2, env2, token, { target: 'prod-db', task: 'check-logs', ttl: '5m' });
      const certFile = `${r.key.path}-cert.pub`;
      writeFileSync(certFile, r.body.certificate + '\n');
      await api(d2.url, 'POST', `/v1/requests/${r.body.id}/revoke`, {}, token);
      const file = join(env2.dir, 'krl');
      const get = async () => {
        const res = await fetch(`${d2.url}/v1/krl`);
        writeFileSync(file, Buffer.from(await res.arrayBuffer()));
        return { etag: res.headers.get('etag'), version: Number(res.headers.get('x-krl-version')) };
      };
      const listed = await get();
      expect(krlQuery(file, [certFile])[certFile]).toBe('REVOKED');

      clock.advance(5 * MIN); // expired, but within the 300 s grace for skewed host clocks
      await d2.deps.state.prune(Math.floor(clock.now() / 1000)); // what the daemon's minute timer does
      expect((await get()).etag).toBe(listed.etag);
      expect(krlQuery(file, [certFile])[certFile]).toBe('REVOKED');

      clock.advance(5 * MIN + 1000);
      await d2.deps.state.prune(Math.floor(clock.now() / 1000));
      const pruned = await get();
      expect(pruned.etag).not.toBe(listed.etag);
      expect(pruned.version).toBeGreaterThan(listed.version);
      expect(krlQuery(file, [certFile])[certFile]).toBe('ok');
    });
  });

  describe('who may revoke POST /v1/requests/:id/revoke', () => {
    // dave's incident on prod-db needs sre-leads; bob approves it.
    let tickets = 100;
    async function approvedIncident(ticket: string) {
      const r = await requestAccess(d, env, await tok('dave'), { target: 'prod-db', task: 'incident', ticket });
      expect(r.status).toBe(202);
      const a = await api(d.url, 'POST', `/v1/requests/${r.body.id}/approve`, {}, await tok('bob'));
      expect(a.body.status).toBe('issued');
      const certFile = `${r.key.path}-cert.pub`;
      writeFileSync(certFile, a.body.certificate + '\n');
      return { id: r.body.id as string, certFile };
    }

    it.each([
      ['ok/requester', 'dave', 200],
      ['ok/approver who approved', 'bob', 200],
      ['ok/another approver of the rule', 'carol', 200],
      ['ok/admin', 'erin', 200],
      ['fail/stranger in no group', 'mallory', 404],
      ['fail/sre member who is not an approver', 'alice', 404],
    ])('%s (%s) → %i', async (_name, who, want) => {
      const c = await approvedIncident(`INC-${++tickets}`);
      const r = await revoke(who, c.id);
      expect(r.status).toBe(want);
      await fetchKrl();
      expect(krlQuery(krlFile, [c.certFile])[c.certFile]).toBe(want === 200 ? 'REVOKED' : 'ok');
      const view = await api(d.url, 'GET', `/v1/requests/${c.id}`, undefined, await tok('dave'));
      expect(view.body.status).toBe(want === 200 ? 'revoked' : 'issued');
    });

    it('fail/an auto grant is not revocable by approvers of other rules', async () => {
      const c = await issued('alice');
      expect((await revoke('bob', c.id)).status).toBe(404);
      expect((await revoke('erin', c.id)).status).toBe(200);
    });

    it('ok/revoke by serial through /v1/revocations follows the same permissions', async () => {
      const c = await issued('alice');
      const stranger = await api(d.url, 'POST', '/v1/revocations', { serial: c.serial }, await tok('mallory'));
      expect(stranger.status).toBe(404);
      const mine = await api(d.url, 'POST', '/v1/revocations', { serial: c.serial }, await tok('alice'));
      expect(mine.status).toBe(200);
      expect(mine.body.revoked).toEqual([{ id: c.id, serial: c.serial }]);
    });
  });

  describe('admin revocations POST /v1/revocations', () => {
    it('fail/non-admins may not revoke by user or by key (403), nothing changes', async () => {
      const c = await issued('dave', { target: 'staging-web', task: 'check-logs' });
      const before = await fetchKrl();
      for (const who of ['alice', 'bob', 'dave']) {
        expect((await api(d.url, 'POST', '/v1/revocations', { user: 'dave' }, await tok(who))).status, who).toBe(403);
      }
      const fp = (await api(d.url, 'GET', `/v1/requests/${c.id}`, undefined, await tok('dave'))).body;
      expect(fp.status).toBe('issued');
      expect((await fetchKrl(before.etag)).status).toBe(304);
    });

    it('ok/by user: every live grant of the user is revoked and their session ends', async () => {
      const a = await issued('carol', { target: 'staging-web', task: 'check-logs' });
      const b = await issued('carol', { target: 'staging-web', task: 'restart-service' });
      const other = await issued('alice', { target: 'staging-web', task: 'check-logs' });
      const carolToken = await tok('carol');
      const r = await api(d.url, 'POST', '/v1/revocations', { user: 'carol', reason: 'left the team' }, await tok('erin'));
      expect(r.status).toBe(200);
      expect(r.body.revoked.map((x: { id: string }) => x.id).sort()).toEqual([a.id, b.id].sort());
      await fetchKrl();
      expect(krlQuery(krlFile, [a.certFile, b.certFile, other.certFile])).toEqual({
        [a.certFile]: 'REVOKED',
        [b.certFile]: 'REVOKED',
        [other.certFile]: 'ok',
      });
      expect((await api(d.url, 'GET', '/v1/requests', undefined, carolToken)).status).toBe(401);
      expect(auditOf(env, a.id).find((x) => x.type === 'revoke')).toMatchObject({ by: 'erin', reason: 'left the team' });
    });

    it('ok/by key fingerprint: its grants are revoked and the key itself is in the KRL', async () => {
      const c = await issued('alice');
      const fingerprint = (await import('../../src/ca/keys.js')).parsePublicKey(c.key.publicLine).fingerprint;
      const before = await fetchKrl();
      const r = await api(d.url, 'POST', '/v1/revocations', { fingerprint, reason: 'laptop stolen' }, await tok('erin'));
      expect(r.status).toBe(200);
      expect(r.body.revoked).toEqual([{ id: c.id, serial: c.serial }]);
      const after = await fetchKrl(before.etag);
      expect(after.status).toBe(200);
      const pub = `${c.key.path}.pub`;
      expect(krlQuery(krlFile, [c.certFile, pub])).toEqual({ [c.certFile]: 'REVOKED', [pub]: 'REVOKED' });
      // A key the CA never saw (reported stolen before first use) is revoked by its SHA-256 hash.
      const unseen = subjectKey(env, 'never-used');
      const unseenFp = (await import('../../src/ca/keys.js')).parsePublicKey(unseen.publicLine).fingerprint;
      const unknown = await api(d.url, 'POST', '/v1/revocations', { fingerprint: unseenFp }, await tok('erin'));
      expect(unknown.status).toBe(200);
      expect(unknown.body.revoked).toEqual([]);
      await fetchKrl();
      expect(krlQuery(krlFile, [unseen.path + '.pub'])).toEqual({ [unseen.path + '.pub']: 'REVOKED' });
      expect((await api(d.url, 'POST', '/v1/revocations', { fingerprint }, await tok('alice'))).status).toBe(403);
    });

    it('ok/a revoked key stays refused and in the KRL (past maxTtl) until an admin lifts it; lifting is admin-only and audited', async () => {
      const c = await issued('alice');
      const fingerprint = (await import('../../src/ca/keys.js')).parsePublicKey(c.key.publicLine).fingerprint;
      const pub = `${c.key.path}.pub`;
      expect((await api(d.url, 'POST', '/v1/revocations', { fingerprint, reason: 'lost' }, await tok('erin'))).status).toBe(200);
      // The attack: ask for a new certificate for the revoked key.
      const again = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: c.key.publicLine }, await tok('alice'));
      expect(again.status).toBe(403);
      expect(again.body.error).toMatchObject({ code: 'forbidden' });
      expect(again.body.error.message).toContain(fingerprint);
      // Long after every certificate could have expired, the pruner keeps the key in the KRL.
      const later = Math.floor(Date.now() / 1000) + 10 * d.deps.config.maxTtl;
      await d.deps.state.prune(later);
      expect((await d.deps.state.listRevocations(later)).keys.map((k) => k.fingerprint)).toContain(fingerprint);
      await fetchKrl();
      expect(krlQuery(krlFile, [pub])).toEqual({ [pub]: 'REVOKED' });

      expect((await api(d.url, 'POST', '/v1/revocations/lift', { fingerprint }, await tok('alice'))).status).toBe(403);
      const lifted = await api(d.url, 'POST', '/v1/revocations/lift', { fingerprint, reason: 'found it' }, await tok('erin'));
      expect(lifted.status).toBe(200);
      expect(lifted.body).toEqual({ lifted: { fingerprint } });
      expect((await api(d.url, 'POST', '/v1/revocations/lift', { fingerprint }, await tok('erin'))).status).toBe(404);
      await fetchKrl();
      expect(krlQuery(krlFile, [pub])).toEqual({ [pub]: 'ok' });
      const after = await api(d.url, 'POST', '/v1/requests', { target: 'prod-db', task: 'check-logs', publicKey: c.key.publicLine }, await tok('alice'));
      expect(after.status).toBe(201);
      const records = readFileSync(join(env.dataDir, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(records.filter((r) => r.keyFingerprint === fingerprint && r.by === 'erin').map((r) => r.type)).toEqual(['revoke', 'unrevoke_key']);
    });
  });
});
