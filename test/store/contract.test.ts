/**
 * One store contract, two engines: everything the use cases rely on from the store behaves the
 * same on the embedded data dir and on PostgreSQL. Engine-specific behaviour (crash recovery of
 * files, replicas) is tested beside each engine.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifyAuditLines } from '../../src/store/audit.js';
import { openEngine, type StoreEngine } from '../../src/store-engine.js';
import type { RequestRecord } from '../../src/store/types.js';
import { sampleRequest, type RecordFields } from '../helpers/records.js';
import { tempDir } from '../helpers/keys.js';
import { describeWithPostgres, freshDatabase } from '../helpers/pg.js';

const NOW = 1_900_000_000; // seconds
const clock = () => new Date(NOW * 1000);

const request = (id: string, over: RecordFields = {}): RequestRecord => sampleRequest(id, NOW, over);

/** What signRequest appends for an auto-issued certificate (the fields grants are rebuilt from). */
function issueEvent(id: string, serial: string, validBefore: number, user = 'alice') {
  return {
    type: 'issue',
    id,
    user,
    target: 'prod-db',
    task: 'check-logs',
    serial,
    keyId: `jit:${id}`,
    principals: ['readonly@prod-db'],
    validAfter: NOW - 60,
    validBefore,
    ca: 'SHA256:ca',
    keyFingerprint: `SHA256:key-${id}`,
    publicKey: 'ssh-ed25519 AAAA',
    certificate: 'ssh-ed25519-cert-v01@openssh.com AAAA',
  };
}

interface Engine {
  name: string;
  open(): Promise<{ store: StoreEngine; cleanup(): Promise<void> }>;
}

const embedded: Engine = {
  name: 'embedded',
  async open() {
    const t = tempDir('jit-contract-');
    const store = await openEngine({ store: { type: 'embedded' }, dataDir: `${t.dir}/data` }, { clock });
    return { store, cleanup: async () => t.cleanup() };
  },
};

const postgres: Engine = {
  name: 'postgres',
  async open() {
    const db = await freshDatabase();
    const store = await openEngine({ store: { type: 'postgres', url: db.url, poolSize: 10 }, dataDir: '/nonexistent' }, { clock });
    return { store, cleanup: () => db.drop() };
  },
};

function contract(engine: Engine): void {
  let s: StoreEngine;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ store: s, cleanup } = await engine.open());
  });
  afterEach(async () => {
    await s.close();
    await cleanup();
  });

  it('ok/put, get, list with filters (newest first); reads are copies', async () => {
    await s.state.putRequest(request('r1', { createdAt: NOW * 1000 - 2 }));
    await s.state.putRequest(request('r2', { user: 'bob', target: 'vault', createdAt: NOW * 1000 - 1 }));
    await s.state.putRequest(request('r3', { status: 'denied' }));
    const got = await s.state.getRequest('r1');
    expect(got?.user).toBe('alice');
    got!.user = 'mallory';
    expect((await s.state.getRequest('r1'))?.user).toBe('alice');
    expect((await s.state.listRequests()).map((r) => r.id)).toEqual(['r3', 'r2', 'r1']);
    expect((await s.state.listRequests({ user: 'alice', status: 'pending' })).map((r) => r.id)).toEqual(['r1']);
    expect((await s.state.listRequests({ target: 'vault' })).map((r) => r.id)).toEqual(['r2']);
    expect((await s.state.listRequests({ status: ['pending', 'denied'], user: 'alice' })).map((r) => r.id).sort()).toEqual(['r1', 'r3']);
    expect(await s.state.getRequest('nope')).toBeUndefined();
  });

  it('ok/updateRequest is atomic: a throwing mutation changes nothing; unknown id is not_found', async () => {
    await s.state.putRequest(request('r1'));
    await expect(
      s.state.updateRequest('r1', (r) => {
        r.status = 'denied';
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect((await s.state.getRequest('r1'))?.status).toBe('pending');
    const up = await s.state.updateRequest('r1', (r) => {
      r.approvals.push({ by: 'bob', at: 1 });
    });
    expect(up.approvals).toHaveLength(1);
    expect((await s.state.getRequest('r1'))?.approvals).toEqual([{ by: 'bob', at: 1 }]);
    await expect(s.state.updateRequest('missing', () => undefined)).rejects.toMatchObject({ code: 'not_found' });
  });

  it('ok/counts: pending until expiry, grants until validBefore (issue record + recordIssued)', async () => {
    await s.state.putRequest(request('p1'));
    await s.state.putRequest(request('p2', { expiresAt: NOW * 1000 - 1 }));
    expect(await s.state.countPending('alice', NOW * 1000)).toBe(1);
    const rec = await s.audit.append(issueEvent('g1', '41', NOW + 900));
    expect(rec.seq).toBe(1);
    s.state.recordIssued(request('g1', { status: 'issued', cert: { serial: '41', keyId: 'jit:g1', validAfter: NOW - 60, validBefore: NOW + 900, caFingerprint: 'SHA256:ca' } }));
    expect(await s.state.countActiveGrants('alice', NOW)).toBe(1);
    expect(await s.state.countActiveGrants('alice', NOW + 900)).toBe(0);
    const bySerial = await s.state.listRequests({ serial: '41' });
    expect(bySerial.map((r) => [r.id, r.status, r.cert?.validBefore])).toEqual([['g1', 'issued', NOW + 900]]);
  });

  it('ok/revocations: once each, KRL version grows, listed until validBefore + grace', async () => {
    const v0 = await s.state.krlVersion();
    const rev = { serial: '7', caFingerprint: 'SHA256:ca', validBefore: NOW + 60, revokedAt: NOW * 1000, by: 'erin' };
    expect(await s.state.addRevocation(rev)).toBe(true);
    expect(await s.state.addRevocation(rev)).toBe(false);
    const v1 = await s.state.krlVersion();
    expect(v1).toBeGreaterThan(v0);
    expect(await s.state.addKeyRevocation({ fingerprint: 'SHA256:k', revokedAt: 1, by: 'erin' })).toBe(true);
    expect(await s.state.addKeyRevocation({ fingerprint: 'SHA256:k', revokedAt: 1, by: 'erin' })).toBe(false);
    expect((await s.state.keyRevocation('SHA256:k'))?.by).toBe('erin');
    const snap = await s.state.listRevocations(NOW);
    expect(snap.krlVersion).toBeGreaterThan(v1);
    expect(snap.certificates.map((c) => c.serial)).toEqual(['7']);
    expect(snap.keys.map((k) => k.fingerprint)).toEqual(['SHA256:k']);
    expect((await s.state.listRevocations(NOW + 60 + 301)).certificates).toEqual([]);
    expect(await s.state.removeKeyRevocation('SHA256:k')).toBe(true);
    expect(await s.state.removeKeyRevocation('SHA256:k')).toBe(false);
    expect(await s.state.keyRevocation('SHA256:k')).toBeUndefined();
  });

  it('ok/revokeGrants: live grants become revoked with KRL entries in one step; final ones are skipped', async () => {
    await s.audit.append(issueEvent('g1', '11', NOW + 900));
    s.state.recordIssued(request('g1', { status: 'issued', cert: { serial: '11', keyId: 'k', validAfter: NOW - 60, validBefore: NOW + 900, caFingerprint: 'SHA256:ca' } }));
    await s.state.putRequest(request('p1'));
    await s.state.putRequest(request('d1', { status: 'denied' }));
    const before = await s.state.krlVersion();
    const changed = await s.state.revokeGrants(['g1', 'p1', 'd1', 'missing'], { at: 5, by: 'erin', reason: 'left' });
    expect(changed.map((r) => [r.id, r.status, r.revokedBy]).sort()).toEqual([
      ['g1', 'revoked', 'erin'],
      ['p1', 'revoked', 'erin'],
    ]);
    expect((await s.state.getRequest('g1'))?.status).toBe('revoked');
    expect((await s.state.getRequest('d1'))?.status).toBe('denied');
    const snap = await s.state.listRevocations(NOW);
    expect(snap.certificates.map((c) => [c.serial, c.reason])).toEqual([['11', 'left']]);
    expect(snap.krlVersion).toBeGreaterThan(before);
    expect(await s.state.countActiveGrants('alice', NOW)).toBe(0);
  });

  it('ok/prune: a pending request past expiry is reported expired once', async () => {
    await s.state.putRequest(request('p1', { expiresAt: (NOW - 10) * 1000 }));
    await s.state.putRequest(request('p2'));
    const r1 = await s.state.prune(NOW);
    expect(r1.expired.map((r) => r.id)).toEqual(['p1']);
    expect((await s.state.getRequest('p1'))?.status).toBe('expired');
    const r2 = await s.state.prune(NOW);
    expect(r2.expired).toEqual([]);
    expect((await s.state.getRequest('p2'))?.status).toBe('pending');
  });

  it('ok/audit: 300 concurrent appends form one verifiable chain; tail pages; head follows', async () => {
    const recs = await Promise.all(Array.from({ length: 300 }, (_, i) => s.audit.append({ type: 'auth', user: `u${i}`, big: 2n ** 64n })));
    expect(new Set(recs.map((r) => r.seq)).size).toBe(300);
    expect(s.audit.head().seq).toBe(300);
    const all = [...(await s.audit.tail(0, 200)), ...(await s.audit.tail(200, 200))];
    expect(all.map((r) => r.seq)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    expect(all[0].big).toBe('18446744073709551616');
    async function* lines() {
      for (const r of all) yield { text: JSON.stringify(r), tooLong: false, terminated: true };
    }
    const v = await verifyAuditLines(lines());
    expect(v).toMatchObject({ ok: true, records: 300, lastHash: s.audit.head().hash });
    await expect(s.audit.append({ type: 'x', token: 'secret' })).rejects.toMatchObject({ code: 'internal' });
    await expect(s.audit.append({ type: 'x', note: 'y'.repeat(40_000) })).rejects.toMatchObject({ code: 'bad_request' });
  });

  it('ok/serials: 500 concurrent next() are unique and ≥ 1', async () => {
    const got = await Promise.all(Array.from({ length: 500 }, () => s.serials.next()));
    expect(new Set(got.map(String)).size).toBe(500);
    expect(got.every((x) => x >= 1n)).toBe(true);
  });

  it('ok/session tokens by hash: expire, revoke per user', async () => {
    const h = 'a'.repeat(64);
    await s.sessionTokens.put(h, { user: 'alice', expiresAt: NOW * 1000 + 1000, idpGroups: ['g'] });
    await s.sessionTokens.put('b'.repeat(64), { user: 'bob', expiresAt: NOW * 1000 + 1000 });
    expect(await s.sessionTokens.get(h, NOW * 1000)).toEqual({ user: 'alice', expiresAt: NOW * 1000 + 1000, idpGroups: ['g'] });
    expect(await s.sessionTokens.get(h, NOW * 1000 + 1000)).toBeUndefined();
    await s.sessionTokens.revokeUser('alice');
    expect(await s.sessionTokens.get(h, NOW * 1000)).toBeUndefined();
    expect(await s.sessionTokens.get('b'.repeat(64), NOW * 1000)).toBeDefined();
  });

  it('ok/single use: 20 concurrent markUsed of one challenge nonce → exactly one true', async () => {
    const exp = NOW * 1000 + 60_000;
    const r = await Promise.all(Array.from({ length: 20 }, () => s.usedChallenges.markUsed('nonce-1', exp)));
    expect(r.filter(Boolean)).toHaveLength(1);
    expect(await s.usedIdTokens.markUsed('nonce-1', exp)).toBe(true); // kinds are separate
  });
}

describe('store contract: embedded', () => contract(embedded));
describeWithPostgres('store contract: postgres', () => contract(postgres));

describeWithPostgres('postgres schema migrations', () => {
  it('ok/two stores opening one fresh database at once migrate it once, to the newest version', async () => {
    const db = await freshDatabase();
    try {
      const open = () => openEngine({ store: { type: 'postgres', url: db.url, poolSize: 2 }, dataDir: '/nonexistent' }, { clock });
      const [a, b] = await Promise.all([open(), open()]);
      const { default: pg } = await import('pg');
      const c = new pg.Client(db.url);
      await c.connect();
      const { rows } = await c.query<{ version: number }>('SELECT version FROM jit_schema ORDER BY version');
      await c.end();
      const { MIGRATIONS } = await import('../../src/store/postgres/migrations.js');
      expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
      await a.close();
      await b.close();
    } finally {
      await db.drop();
    }
  });
});
