import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, STORE_FILES, type Store } from '../../src/store/index.js';
import { AUDIT_SNAPSHOT_FILE } from '../../src/store/audit.js';
import { CHECKPOINT_FILES } from '../../src/store/audit-checkpoints.js';

const NOW = Date.parse('2030-01-01T12:00:00Z');
const nowSec = Math.floor(NOW / 1000);
let clockMs = NOW;
const clock = () => new Date(clockMs);

let root: string;
let dataDir: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'jit-snap-'));
  dataDir = join(root, 'data');
  clockMs = NOW;
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const open = (dir = dataDir, snapshots = true) => openStore(dir, { clock, snapshots });
const start = (s: Store) => s.startSnapshots({ everyRecords: 1_000_000, intervalSec: 3600, onError: (e) => { throw e; } });

let n = 0;
/** An `issue` record as service/issue.ts writes it. */
async function issue(s: Store, user: string, validBefore: number, fp = `SHA256:key${n}`) {
  const serial = await s.serials.next();
  const id = `req_${++n}`;
  await s.audit.append({
    type: 'issue', id, user, target: 'prod-db', task: 'check-logs', account: 'readonly', serial: serial.toString(),
    keyId: `jit-ssh:${id}:${user}:check-logs`, principals: ['readonly@prod-db'], validAfter: nowSec - 60, validBefore,
    ca: 'SHA256:ca', keyFingerprint: fp, publicKey: 'ssh-ed25519 AAAA', certificate: 'ssh-ed25519-cert-v01@openssh.com AAAA',
  });
  return { id, serial: serial.toString() };
}

const revokeCert = (s: Store, g: { id: string; serial: string }, validBefore: number) =>
  s.audit.append({ type: 'revoke', id: g.id, user: 'u', by: 'admin', reason: 'test', serial: g.serial, ca: 'SHA256:ca', validBefore });

/** Everything a start rebuilds from the log, in a comparable form. */
async function liveView(s: Store) {
  const grants = (await s.state.listRequests()).map((r) => [r.id, r.status, r.cert?.serial, r.cert?.validBefore]).sort();
  const krl = await s.state.listRevocations(nowSec);
  return {
    grants,
    certs: krl.certificates.map((c) => `${c.caFingerprint} ${c.serial} ${c.validBefore}`).sort(),
    keys: krl.keys.map((k) => k.fingerprint).sort(),
    krlVersion: await s.state.krlVersion(),
    head: s.audit.head(),
  };
}

/** A history: expired grants, live ones, revocations of both kinds, a lifted key revocation. */
async function history(s: Store, count: number) {
  const live = [];
  for (let i = 0; i < count; i++) {
    const expired = i % 3 === 0;
    live.push(await issue(s, `u${i % 4}`, expired ? nowSec - 3600 : nowSec + 900 + i));
  }
  await revokeCert(s, live[1], nowSec + 901);
  await s.audit.append({ type: 'revoke', by: 'admin', keyFingerprint: 'SHA256:stolen', publicKey: 'ssh-ed25519 AAAAstolen', reason: 'laptop' });
  await s.audit.append({ type: 'revoke', by: 'admin', keyFingerprint: 'SHA256:found', reason: 'oops' });
  await s.audit.append({ type: 'unrevoke_key', by: 'admin', keyFingerprint: 'SHA256:found' });
  return live;
}

/** A data dir holding a history, closed cleanly (so its snapshot covers all of it). */
async function closedWithHistory(count: number, dir = dataDir) {
  const s = await open(dir);
  start(s);
  const live = await history(s, count);
  await s.close();
  return live;
}

/** The data dir as a crash would leave it: files copied while the store is still open. */
function crashImage(): string {
  const dir = join(root, `crash-${n++}`);
  cpSync(dataDir, dir, { recursive: true });
  rmSync(join(dir, STORE_FILES.lock), { force: true });
  return dir;
}

/** What a start from the whole log (no snapshot, no state file) rebuilds: the reference. */
async function fullReplayOf(dir: string) {
  const ref = join(root, `ref-${n++}`);
  cpSync(dir, ref, { recursive: true });
  for (const f of [STORE_FILES.state, 'state.journal', AUDIT_SNAPSHOT_FILE, STORE_FILES.lock]) rmSync(join(ref, f), { force: true });
  const s = await open(ref, false);
  const view = await liveView(s);
  await s.close();
  return view;
}

describe('start-up snapshot', () => {
  it('ok/a start reads only the tail after the snapshot and rebuilds exactly what a full replay does', async () => {
    await closedWithHistory(60); // close writes the snapshot
    expect(existsSync(join(dataDir, AUDIT_SNAPSHOT_FILE))).toBe(true);
    expect(statSync(join(dataDir, AUDIT_SNAPSHOT_FILE)).mode & 0o777).toBe(0o600);

    const again = await open();
    expect(again.opened).toEqual({ fromSnapshotSeq: 64, replayedRecords: 0 });
    // A tail: more issuances and a revocation after the snapshot, then a crash (no final snapshot).
    const more = [await issue(again, 'u9', nowSec + 1200), await issue(again, 'u9', nowSec + 1300)];
    await revokeCert(again, more[0], nowSec + 1200);
    const image = crashImage();
    await again.close();

    const fromSnap = await open(image);
    expect(fromSnap.opened).toEqual({ fromSnapshotSeq: 64, replayedRecords: 3 });
    expect(fromSnap.warnings).toEqual([]);
    const view = await liveView(fromSnap);
    expect(view).toEqual(await fullReplayOf(image));
    // Sanity of the reference itself: live grants only, both cert revocations, one key revoked.
    expect(view.grants.length).toBe(40 + 2);
    expect(view.certs).toHaveLength(2);
    expect(view.keys).toEqual(['SHA256:stolen']);
    // Serials continue above everything the log has seen, even without the reservation file.
    await fromSnap.close();
    rmSync(join(image, STORE_FILES.serial));
    const s2 = await open(image);
    expect(await s2.serials.next()).toBe(BigInt(more[1].serial) + 1n);
    await s2.close();
  });

  it('ok/one grant index: a committed issue record is in the state at once, and a snapshot taken then carries it', async () => {
    const s = await open();
    start(s);
    const g = await issue(s, 'u1', nowSec + 900);
    // No recordIssued call: the commit itself indexed the grant, so a snapshot written between the
    // append resolving and the issuer recording its grant cannot miss it.
    expect((await s.state.getRequest(g.id))?.cert?.serial).toBe(g.serial);
    await s.close();
    const again = await open();
    expect(again.opened.replayedRecords).toBe(0);
    expect((await again.state.getRequest(g.id))?.status).toBe('issued');
    await again.close();
  });

  it('ok/revocations written after the last snapshot survive a crash (the tail brings them back)', async () => {
    const g = await closedWithHistory(6);
    const again = await open();
    start(again);
    await revokeCert(again, g[2], nowSec + 905);
    await again.audit.append({ type: 'revoke', by: 'admin', keyFingerprint: 'SHA256:late', reason: 'late' });
    const image = crashImage();
    await again.close();
    rmSync(join(image, STORE_FILES.state)); // even with the state file lost
    const s2 = await open(image);
    const view = await liveView(s2);
    expect(view.certs.some((c) => c.includes(` ${g[2].serial} `))).toBe(true);
    expect(view.keys).toContain('SHA256:late');
    expect(view.grants.find((x) => x[0] === g[2].id)?.[1]).toBe('revoked');
    await s2.close();
  });

  it('fail/records cut off below the snapshot refuse the start, and the refused start writes nothing', async () => {
    await closedWithHistory(10);
    const audit = join(dataDir, STORE_FILES.audit);
    const lines = readFileSync(audit, 'utf8').trim().split('\n');
    writeFileSync(audit, lines.slice(0, -3).join('\n') + '\n');
    const before = readFileSync(join(dataDir, AUDIT_SNAPSHOT_FILE));
    await expect(open()).rejects.toThrow(/refusing to start: the audit log ends at seq 11, but the start-up snapshot .* says seq 14 existed: records were cut off/);
    expect(readFileSync(join(dataDir, AUDIT_SNAPSHOT_FILE))).toEqual(before);
    expect(readFileSync(audit, 'utf8').trim().split('\n')).toHaveLength(11);
    expect(existsSync(join(dataDir, STORE_FILES.lock))).toBe(false);
    // Deleting the log altogether is a cut too, and creates no empty log.
    rmSync(audit);
    await expect(open()).rejects.toThrow(/ends at seq 0, .*cut off/);
    expect(existsSync(audit)).toBe(false);
  });

  it('fail/a record rewritten below the snapshot with its chain recomputed refuses the start', async () => {
    await closedWithHistory(10);
    const audit = join(dataDir, STORE_FILES.audit);
    const { recordHash, canonicalJson } = await import('../../src/store/audit.js');
    let prev = '0'.repeat(64);
    const rewritten = readFileSync(audit, 'utf8').trim().split('\n').map((line) => {
      const { hash: _h, ...rec } = JSON.parse(line) as Record<string, unknown>;
      if (rec.seq === 2) rec.user = 'mallory';
      rec.prevHash = prev;
      prev = recordHash(prev, rec);
      return canonicalJson({ ...rec, hash: prev });
    });
    writeFileSync(audit, rewritten.join('\n') + '\n');
    await expect(open()).rejects.toThrow(/refusing to start: audit record seq 14 differs from the start-up snapshot .*rewritten at or before seq 14/);
    // Moving the snapshot aside accepts the log deliberately (a full replay verifies its chain).
    rmSync(join(dataDir, AUDIT_SNAPSHOT_FILE));
    const s2 = await open();
    expect(s2.opened.replayedRecords).toBe(14);
    await s2.close();
  });

  it('fail/a damaged, foreign-signed or unsigned snapshot is ignored with a warning: the whole log is replayed', async () => {
    await closedWithHistory(12);
    const file = join(dataDir, AUDIT_SNAPSHOT_FILE);
    const good = readFileSync(file, 'utf8');
    const reference = await fullReplayOf(dataDir);
    const [body, seal] = good.split('\n');
    const cases: [string, string, RegExp][] = [
      ['damaged', body.replace('"u1"', '"u7"') + '\n' + seal + '\n', /does not match its hash/],
      ['torn', good.slice(0, good.length - 40), /incomplete/],
      ['not JSON', 'hello\n', /incomplete/],
      ['unsigned', body + '\n' + JSON.stringify({ ...JSON.parse(seal), sig: Buffer.alloc(64).toString('base64') }) + '\n', /not signed by this data dir's audit checkpoint key/],
    ];
    for (const [what, text, why] of cases) {
      writeFileSync(file, text);
      const again = await open();
      expect(again.warnings.join('\n'), what).toMatch(why);
      expect(again.opened.replayedRecords, what).toBe(16);
      expect(await liveView(again), what).toEqual(reference);
      await again.close();
    }
    // A snapshot signed by another data dir's key (a copy from elsewhere) is not ours.
    const other = join(root, 'other');
    await closedWithHistory(12, other);
    cpSync(join(other, AUDIT_SNAPSHOT_FILE), file);
    const again = await open();
    expect(again.warnings.join('\n')).toMatch(/not signed by this data dir's audit checkpoint key/);
    expect(await liveView(again)).toEqual(reference);
    await again.close();
    expect(existsSync(join(dataDir, CHECKPOINT_FILES.key))).toBe(true);
  });

  it('ok/a long replay at start writes a fresh snapshot right away; expired history is not kept in it', async () => {
    const s = await open(dataDir, false);
    for (let i = 0; i < 1100; i++) await issue(s, 'u1', i < 1090 ? nowSec - 3600 : nowSec + 900);
    await s.close();
    const again = await open();
    expect(again.opened.replayedRecords).toBe(1100);
    start(again);
    await again.close();
    const snap = readFileSync(join(dataDir, AUDIT_SNAPSHOT_FILE), 'utf8').split('\n')[0];
    expect((JSON.parse(snap) as { state: { grants: unknown[] } }).state.grants).toHaveLength(10);
    const third = await open();
    expect(third.opened).toEqual({ fromSnapshotSeq: 1100, replayedRecords: 0 });
    expect((await third.audit.tail(1023, 2)).map((r) => r.seq)).toEqual([1024, 1025]); // the tail() index came back too
    await third.close();
  });

  it('ok/without snapshots: true nothing is read or written (every open replays the whole log)', async () => {
    const s = await open(dataDir, false);
    await history(s, 3);
    await s.close();
    expect(existsSync(join(dataDir, AUDIT_SNAPSHOT_FILE))).toBe(false);
    expect(existsSync(join(dataDir, CHECKPOINT_FILES.key))).toBe(false);
    expect(() => s.startSnapshots({ everyRecords: 1, intervalSec: 1, onError: () => undefined })).toThrow(/snapshots: true/);
  });
});
