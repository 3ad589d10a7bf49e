import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openState } from '../../src/store/state.js';
import type { RequestRecord } from '../../src/store/types.js';
import { sampleRequest, type RecordFields } from '../helpers/records.js';

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'jit-state-'));
  file = join(dir, 'state.json');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const NOW = 1_900_000_000; // seconds
const clock = () => new Date(NOW * 1000);

const request = (id: string, over: RecordFields = {}): RequestRecord => sampleRequest(id, NOW, over);

function issued(id: string, validBefore: number, over: RecordFields = {}): RequestRecord {
  return request(id, {
    status: 'issued',
    cert: {
      serial: id.replace(/\D/g, '') || '1',
      keyId: `jit-ssh:${id}:alice:check-logs`,
      validAfter: validBefore - 960,
      validBefore,
      caFingerprint: 'SHA256:ca',
      certificate: 'ssh-ed25519-cert-v01@openssh.com ' + 'A'.repeat(600),
    },
    ...over,
  });
}

const tokenHash = (t: string) => createHash('sha256').update(t).digest('hex');

describe('requests', () => {
  it('ok/put, get, list, update; reads are copies', async () => {
    const st = await openState(file, { clock });
    await st.putRequest(request('req_1'));
    await st.putRequest(request('req_2', { user: 'bob', createdAt: NOW * 1000 + 5 }));
    const got = (await st.getRequest('req_1'))!;
    got.user = 'mallory';
    expect((await st.getRequest('req_1'))!.user).toBe('alice');
    expect((await st.listRequests()).map((r) => r.id)).toEqual(['req_2', 'req_1']);
    expect((await st.listRequests({ user: 'bob' })).map((r) => r.id)).toEqual(['req_2']);
    expect(await st.listRequests({ status: 'issued' })).toEqual([]);

    const updated = await st.updateRequest('req_1', (r) => {
      r.approvals.push({ by: 'carol', at: NOW * 1000 });
    });
    expect(updated.approvals).toHaveLength(1);
    await st.close();

    const again = await openState(file, { clock });
    expect((await again.getRequest('req_1'))!.approvals[0].by).toBe('carol');
    await again.close();
  });

  it('fail/updateRequest: unknown id is not_found; a throwing mutate changes nothing', async () => {
    const st = await openState(file, { clock });
    await expect(st.updateRequest('nope', () => {})).rejects.toMatchObject({ code: 'not_found' });
    await st.putRequest(request('req_1'));
    await expect(
      st.updateRequest('req_1', (r) => {
        r.status = 'issued';
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect((await st.getRequest('req_1'))!.status).toBe('pending');
    await st.close();
  });

  it('ok/ids that are Object.prototype names are just ids', async () => {
    const st = await openState(file, { clock });
    expect(await st.getRequest('constructor')).toBeUndefined();
    expect(await st.getRequest('__proto__')).toBeUndefined();
    await st.putRequest(request('__proto__'));
    expect((await st.getRequest('__proto__'))!.id).toBe('__proto__');
    await st.close();
    const again = await openState(file, { clock });
    expect((await again.listRequests()).map((r) => r.id)).toEqual(['__proto__']);
    await again.close();
  });

  it('ok/countActiveGrants counts unexpired issued certificates of the user', async () => {
    const st = await openState(file, { clock });
    await st.putRequest(issued('req_1', NOW + 600));
    await st.putRequest(issued('req_2', NOW - 1));
    await st.putRequest(issued('req_3', NOW + 600, { user: 'bob' }));
    await st.putRequest(issued('req_4', NOW + 600, { status: 'revoked' }));
    await st.putRequest(request('req_5'));
    expect(await st.countActiveGrants('alice', NOW)).toBe(1);
    expect((await st.listRequests({ serial: '3' })).map((r) => r.id)).toEqual(['req_3']);
    await st.close();
  });

  it('ok/countActiveGrants stays exact as grants are issued, expire, are revoked, and the clock moves either way', async () => {
    const st = await openState(file, { clock });
    // Counting is remembered between issuances (no walk per issuance); each case below must still see the truth.
    const count = () => st.countActiveGrants('alice', t);
    let t = NOW;
    st.recordIssued(issued('req_1', NOW + 10));
    st.recordIssued(issued('req_2', NOW + 20));
    expect(await count()).toBe(2);
    st.recordIssued(issued('req_3', NOW + 5)); // expires before the others
    st.recordIssued(issued('req_4', NOW + 30, { user: 'bob' }));
    expect(await count()).toBe(3);
    t = NOW + 5;
    expect(await count()).toBe(2); // req_3 expired at its validBefore
    t = NOW + 9;
    expect(await count()).toBe(2);
    await st.revokeGrants(['req_2'], { at: NOW * 1000, by: 'admin' });
    expect(await count()).toBe(1);
    st.recordIssued(issued('req_5', NOW + 100));
    expect(await count()).toBe(2);
    t = NOW + 10;
    expect(await count()).toBe(1); // req_1 gone, req_5 left
    t = NOW; // a clock stepped back: req_1 and req_3 count again
    expect(await count()).toBe(3);
    await st.updateRequest('req_5', (r) => {
      r.status = 'revoked';
    });
    expect(await count()).toBe(2);
    expect(await st.countActiveGrants('bob', NOW + 29)).toBe(1);
    await st.prune(NOW + 50);
    t = NOW + 50;
    expect(await count()).toBe(0);
    await st.close();
  });
});

describe('writes', () => {
  it('ok/many changes in one tick share one file write; a resolved change survives a crash', async () => {
    const st = await openState(file, { clock });
    await Promise.all(Array.from({ length: 200 }, (_, i) => st.putRequest(request(`req_${i}`))));
    expect(st.stats.writes).toBe(1);
    // No close: a second reader sees everything the first one acknowledged.
    const other = await openState(file, { clock });
    expect(await other.listRequests()).toHaveLength(200);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('ok/changes made during a write share the next one', async () => {
    const st = await openState(file, { clock });
    const first = st.putRequest(request('req_a'));
    await new Promise((r) => setImmediate(r));
    const rest = Array.from({ length: 50 }, (_, i) => st.putRequest(request(`req_b${i}`)));
    await Promise.all([first, ...rest]);
    expect(st.stats.writes).toBe(2);
    await st.close();
  });

  it("fail/an unwritable state dir → 'unavailable'; the next write after recovery carries everything", async () => {
    const sub = join(dir, 'data');
    mkdirSync(sub);
    const st = await openState(join(sub, 'state.json'), { clock });
    await st.putRequest(request('req_1'));
    rmSync(sub, { recursive: true });
    await expect(st.putRequest(request('req_2'))).rejects.toMatchObject({ code: 'unavailable', message: 'state not writable: ENOENT' });
    mkdirSync(sub);
    await st.putRequest(request('req_3'));
    await st.close();
    const again = await openState(join(sub, 'state.json'), { clock });
    expect((await again.listRequests()).map((r) => r.id).sort()).toEqual(['req_1', 'req_2', 'req_3']);
    await again.close();
  });

  it('fail/a corrupt state file refuses to open', async () => {
    writeFileSync(file, '{"version":1,"requ');
    await expect(openState(file)).rejects.toThrow(/not valid JSON/);
    writeFileSync(file, JSON.stringify({ version: 99 }));
    await expect(openState(file)).rejects.toThrow(/schema version 99/);
  });
});

describe('revocations and KRL version', () => {
  it('ok/every change bumps the version; duplicates do not; versions never go backwards', async () => {
    const st = await openState(file, { clock });
    expect(await st.krlVersion()).toBe(0);
    const rev = { serial: '42', caFingerprint: 'SHA256:ca', validBefore: NOW + 600, revokedAt: NOW * 1000, by: 'alice' };
    expect(await st.addRevocation(rev)).toBe(true);
    const v1 = await st.krlVersion();
    expect(v1).toBeGreaterThanOrEqual(NOW); // seeded from the clock, see bumpKrl
    expect(await st.addRevocation(rev)).toBe(false);
    expect(await st.krlVersion()).toBe(v1);
    expect(await st.addRevocation({ ...rev, caFingerprint: 'SHA256:other' })).toBe(true);
    const v2 = await st.krlVersion();
    expect(v2).toBeGreaterThan(v1);
    const key = { fingerprint: 'SHA256:k', publicKey: 'ssh-ed25519 AAAA', revokedAt: NOW * 1000, by: 'root' };
    expect(await st.addKeyRevocation(key)).toBe(true);
    expect(await st.addKeyRevocation({ ...key, by: 'someone-else' })).toBe(false);
    const v3 = await st.krlVersion();
    expect(v3).toBeGreaterThan(v2);
    const snap = await st.listRevocations(NOW);
    expect(snap.krlVersion).toBe(v3);
    expect(snap.certificates.map((r) => r.caFingerprint).sort()).toEqual(['SHA256:ca', 'SHA256:other']);
    expect(snap.keys).toHaveLength(1);
    await st.close();
    const again = await openState(file, { clock });
    expect(await again.krlVersion()).toBe(v3);
    await again.close();
  });

  it('ok/listRevocations leaves out expired entries (after the skew grace); pruning them bumps the version', async () => {
    const st = await openState(file, { clock, krlGraceSec: 300 });
    await st.addRevocation({ serial: '1', caFingerprint: 'SHA256:ca', validBefore: NOW - 301, revokedAt: 0, by: 'a' });
    await st.addRevocation({ serial: '2', caFingerprint: 'SHA256:ca', validBefore: NOW - 100, revokedAt: 0, by: 'a' });
    await st.addRevocation({ serial: '3', caFingerprint: 'SHA256:ca', validBefore: NOW + 100, revokedAt: 0, by: 'a' });
    expect((await st.listRevocations(NOW)).certificates.map((r) => r.serial).sort()).toEqual(['2', '3']);
    const before = await st.krlVersion();
    const res = await st.prune(NOW);
    expect(res.removedRevocations).toBe(1);
    expect(await st.krlVersion()).toBeGreaterThan(before);
    const unchanged = await st.krlVersion();
    expect((await st.prune(NOW)).removedRevocations).toBe(0);
    expect(await st.krlVersion()).toBe(unchanged);
    await st.close();
  });
});

describe('tokens', () => {
  it('ok/stores only hashes; expired tokens are not returned and are pruned', async () => {
    const st = await openState(file, { clock });
    const h = tokenHash('jit_secret-token');
    await st.putToken(h, { user: 'alice', groups: ['sre'], expiresAt: (NOW + 60) * 1000 });
    await st.putToken(tokenHash('old'), { user: 'bob', expiresAt: (NOW - 1) * 1000 });
    expect(await st.getToken(h, NOW * 1000)).toEqual({ user: 'alice', groups: ['sre'], expiresAt: (NOW + 60) * 1000 });
    expect(await st.getToken(h, (NOW + 60) * 1000)).toBeUndefined();
    expect(await st.getToken(tokenHash('old'), NOW * 1000)).toBeUndefined();
    await expect(st.putToken('jit_secret-token', { user: 'alice', expiresAt: 0 })).rejects.toThrow(/sha256/);
    expect((await st.prune(NOW)).removedTokens).toBe(1);
    await st.deleteToken(h);
    expect(await st.getToken(h, NOW * 1000)).toBeUndefined();
    await st.close();
    expect(readFileSync(file, 'utf8')).not.toContain('jit_secret-token');
  });
});

describe('prune', () => {
  it('ok/expires stale pending requests and returns them for the audit', async () => {
    const st = await openState(file, { clock });
    await st.putRequest(request('req_old', { expiresAt: (NOW - 10) * 1000 }));
    await st.putRequest(request('req_new'));
    const res = await st.prune(NOW);
    expect(res.expired.map((r) => r.id)).toEqual(['req_old']);
    expect(res.expired[0].status).toBe('expired');
    expect((await st.getRequest('req_old'))!.status).toBe('expired'); // kept for the grace period
    expect((await st.getRequest('req_new'))!.status).toBe('pending');
    expect((await st.prune(NOW)).expired).toEqual([]);
    expect((await st.prune(NOW + 3600)).removedRequests).toBe(1);
    expect(await st.getRequest('req_old')).toBeUndefined();
    await st.close();
  });

  it('ok/10,000 past issuances put then pruned leave a small file', async () => {
    const st = await openState(file, { clock });
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 10_000 }, (_, i) =>
        st.putRequest(issued(`req_${i + 1}`, NOW - 7200 + (i % 100))),
      ),
    );
    await Promise.all(
      Array.from({ length: 10_000 }, (_, i) =>
        st.addRevocation({ serial: String(i + 1), caFingerprint: 'SHA256:ca', validBefore: NOW - 7200, revokedAt: 0, by: 'a' }),
      ),
    );
    const bigSize = statSync(file).size;
    const live = issued('req_live', NOW + 600);
    await st.putRequest(live);
    const putMs = performance.now() - t0;
    expect(bigSize).toBeGreaterThan(10_000 * 500);

    const p0 = performance.now();
    const res = await st.prune(NOW);
    const pruneMs = performance.now() - p0;
    expect(res.removedRequests).toBe(10_000);
    expect(res.removedRevocations).toBe(10_000);
    expect((await st.listRevocations(NOW)).certificates).toEqual([]);
    await st.close();
    const small = statSync(file).size;
    console.log(`state: 10k issued + 10k revocations = ${bigSize} bytes (put ${putMs.toFixed(0)} ms); after prune ${small} bytes (${pruneMs.toFixed(0)} ms)`);
    expect(small).toBeLessThan(2_000);
    const again = await openState(file, { clock });
    expect((await again.listRequests()).map((r) => r.id)).toEqual(['req_live']);
    await again.close();
  });
});

describe('prune failures', () => {
  it('fail/a failed prune write reports the expired requests again next time', async () => {
    const sub = join(dir, 'data');
    mkdirSync(sub);
    const st = await openState(join(sub, 'state.json'), { clock });
    await st.putRequest(request('req_old', { expiresAt: (NOW - 10) * 1000 }));
    rmSync(sub, { recursive: true });
    await expect(st.prune(NOW)).rejects.toMatchObject({ code: 'unavailable' });
    mkdirSync(sub);
    expect((await st.prune(NOW)).expired.map((r) => r.id)).toEqual(['req_old']);
    await st.close();
  });
});
