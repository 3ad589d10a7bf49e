/**
 * The state journal (issue 10.3): a state write costs the size of the change, not of everyone's
 * state; changes survive a crash; a torn last line or a journal older than the snapshot is never
 * replayed over newer data; the journal is folded into the snapshot once it outgrows it.
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { journalFileOf, openState, readRevocations } from '../../src/store/state.js';
import type { RequestRecord } from '../../src/store/types.js';
import { sampleRequest } from '../helpers/records.js';

let dir: string;
let file: string;
let journal: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'jit-journal-'));
  file = join(dir, 'state.json');
  journal = journalFileOf(file);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const NOW = 1_900_000_000;
const clock = () => new Date(NOW * 1000);
const size = (f: string) => (existsSync(f) ? statSync(f).size : 0);

function pending(id: string, user = 'alice'): RequestRecord {
  return sampleRequest(id, NOW, { user, task: 'incident', reason: 'r'.repeat(500) });
}

describe('state journal', () => {
  it('ok/with 4,000 other pending requests stored, one change appends about one record, the snapshot is untouched', async () => {
    const st = await openState(file, { clock });
    await Promise.all(Array.from({ length: 4000 }, (_, i) => st.putRequest(pending(`req_other${i}`, `user${i % 800}`))));
    const snapshotBytes = size(file);
    expect(snapshotBytes).toBeGreaterThan(4000 * 800);
    const before = size(journal);
    const t0 = performance.now();
    await st.putRequest(pending('req_mine', 'bob'));
    const ms = performance.now() - t0;
    const appended = size(journal) - before;
    console.log(`one state write beside 4,000 pending requests (${(snapshotBytes / 2 ** 20).toFixed(1)} MiB snapshot): ${appended} bytes appended in ${ms.toFixed(1)} ms`);
    expect(appended).toBeGreaterThan(0);
    expect(appended).toBeLessThan(2048);
    expect(size(file)).toBe(snapshotBytes);
    // No close (a crash): a new reader sees the change.
    const other = await openState(file, { clock });
    expect((await other.getRequest('req_mine'))?.user).toBe('bob');
    await other.close();
  });

  it('ok/a torn last line is dropped with a warning; everything acknowledged before it is kept', async () => {
    const st = await openState(file, { clock });
    await st.putRequest(pending('req_1')); // first write: the snapshot
    await st.putRequest(pending('req_2')); // journal
    await st.updateRequest('req_1', (r) => {
      r.approvals.push({ by: 'carol', at: NOW * 1000 });
    });
    appendFileSync(journal, '{"e":1,"req":[["req_3",{"id":"re'); // a crash mid-append
    const again = await openState(file, { clock });
    expect(again.warnings.join()).toMatch(/torn/);
    expect((await again.listRequests()).map((r) => r.id).sort()).toEqual(['req_1', 'req_2']);
    expect((await again.getRequest('req_1'))!.approvals).toHaveLength(1);
    // Opening folded the journal into the snapshot, so later appends follow a clean file.
    expect(size(journal)).toBe(0);
    await again.putRequest(pending('req_4'));
    await again.close();
    const third = await openState(file, { clock });
    expect((await third.listRequests()).map((r) => r.id).sort()).toEqual(['req_1', 'req_2', 'req_4']);
    await third.close();
  });

  it('ok/journal lines older than the snapshot (crash between snapshot and truncate) are ignored, not replayed', async () => {
    const st = await openState(file, { clock });
    await st.putRequest(pending('req_1'));
    await st.putRequest(pending('req_2'));
    const oldJournal = readFileSync(journal, 'utf8');
    expect(oldJournal).toContain('req_2');
    await st.updateRequest('req_2', (r) => {
      r.status = 'denied';
    });
    await st.close(); // snapshot with a new epoch, journal emptied
    writeFileSync(journal, oldJournal); // as if the truncate never happened
    const again = await openState(file, { clock });
    expect((await again.getRequest('req_2'))!.status).toBe('denied');
    await again.close();
  });

  it('ok/the journal is folded into a new snapshot once it outgrows it', async () => {
    const st = await openState(file, { clock });
    await st.putRequest(pending('req_0'));
    let i = 0;
    while (st.stats.snapshots < 2 && i < 2000) await st.putRequest(pending(`req_${++i}`));
    expect(st.stats.snapshots).toBe(2);
    expect(size(journal)).toBeLessThan(2048);
    expect(size(file)).toBeGreaterThan(200 * 1024); // the records the journal held, now in the snapshot
    await st.close();
    const again = await openState(file, { clock });
    expect(await again.listRequests()).toHaveLength(i + 1);
    await again.close();
  });

  it('ok/the offline KRL reader (jit-sshd krl) sees revocations still in the journal', async () => {
    const st = await openState(file, { clock });
    await st.putRequest(pending('req_1'));
    await st.addRevocation({ serial: '7', caFingerprint: 'SHA256:ca', validBefore: NOW + 600, revokedAt: NOW * 1000, by: 'erin' });
    await st.addKeyRevocation({ fingerprint: 'SHA256:k', revokedAt: NOW * 1000, by: 'erin' });
    expect(readFileSync(file, 'utf8')).not.toContain('SHA256:k'); // only in the journal so far
    const snap = await readRevocations(file, NOW);
    expect(snap.certificates.map((c) => c.serial)).toEqual(['7']);
    expect(snap.keys.map((k) => k.fingerprint)).toEqual(['SHA256:k']);
    expect(snap.krlVersion).toBe(await st.krlVersion());
    await st.close();
  });
});
