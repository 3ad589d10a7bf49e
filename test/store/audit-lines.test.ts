/** Line formats the verifier accepts: the writer's canonical lines (fast path) and any other key order (re-serialised). */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { GENESIS_HASH, openAuditLog, recordHash, verifyAuditFile } from '../../src/store/audit.js';

const dir = mkdtempSync(join(tmpdir(), 'jit-audit-lines-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('ok/lines in insertion order (not canonical) still verify', async () => {
  const file = join(dir, 'old.jsonl');
  let prev = GENESIS_HASH;
  const lines: string[] = [];
  for (let seq = 1; seq <= 3; seq++) {
    const body = { seq, time: '2026-11-25T00:00:00.000Z', type: 'issue', zeta: seq, alpha: 'a', prevHash: prev };
    const hash = recordHash(prev, body);
    lines.push(JSON.stringify({ ...body, hash }));
    prev = hash;
  }
  writeFileSync(file, lines.join('\n') + '\n');
  expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 3 });
});

it('fail/an edited value in a writer-made line is caught, with or without its hash recomputed', async () => {
  const file = join(dir, 'new.jsonl');
  const log = await openAuditLog(file);
  for (let i = 0; i < 3; i++) await log.append({ type: 'issue', user: 'alice', n: i });
  await log.close();
  const good = readFileSync(file, 'utf8');
  expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 3 });

  const edited = good.trim().split('\n');
  edited[1] = edited[1].replace('"user":"alice"', '"user":"mallory"');
  expect(edited[1]).toContain('mallory');
  writeFileSync(file, edited.join('\n') + '\n');
  expect(await verifyAuditFile(file)).toMatchObject({ ok: false, firstBreak: { seq: 2, reason: 'hash_mismatch' } });

  // Recomputing the edited line's hash moves the break to the next record's prevHash.
  const lines = good.trim().split('\n');
  const rec = JSON.parse(lines[1]);
  delete rec.hash;
  rec.user = 'mallory';
  lines[1] = JSON.stringify({ ...rec, hash: recordHash(rec.prevHash, rec) });
  writeFileSync(file, lines.join('\n') + '\n');
  expect(await verifyAuditFile(file)).toMatchObject({ ok: false, firstBreak: { seq: 3, reason: 'prev_hash_mismatch' } });
});
