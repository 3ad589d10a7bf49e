/** Line formats the verifier accepts: the writer's canonical lines (fast path) and any other key order (re-serialised). */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { open } from 'node:fs/promises';
import { GENESIS_HASH, MAX_LINE_BYTES, openAuditLog, readLines, recordHash, verifyAuditFile } from '../../src/store/audit.js';

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

it('fail/a line longer than any record (16 MiB) is a clear break, never an attempt to decode it', async () => {
  const file = join(dir, 'huge.jsonl');
  const log = await openAuditLog(file);
  for (let i = 0; i < 2; i++) await log.append({ type: 'issue', n: i });
  await log.close();
  // 17 MiB without a newline, then a newline: spans many 1 MiB read chunks.
  writeFileSync(file, readFileSync(file, 'utf8') + 'x'.repeat(MAX_LINE_BYTES + (1 << 20)) + '\n');
  expect(await verifyAuditFile(file)).toMatchObject({ ok: false, records: 2, firstBreak: { line: 3, seq: 3, reason: 'line_too_long' } });
  await expect(openAuditLog(file)).rejects.toThrow(/broken at seq 3 \(line 3\): line 3 is longer than 16 MiB/);
});

it('ok/lines spanning read chunks come back whole, with exact byte offsets', async () => {
  const file = join(dir, 'chunks.jsonl');
  const texts = ['a', 'é'.repeat(700_000), '', 'b'.repeat((1 << 20) - 1), 'c'.repeat(3 << 20), 'tail'];
  writeFileSync(file, texts.join('\n')); // the last line has no newline: a torn write
  const fh = await open(file, 'r');
  try {
    const got = [];
    for await (const l of readLines(fh)) got.push(l);
    expect(got.map((l) => l.text)).toEqual(texts);
    expect(got.map((l) => l.terminated)).toEqual([true, true, true, true, true, false]);
    let at = 0;
    for (const [i, l] of got.entries()) {
      expect(l.start).toBe(at);
      at += Buffer.byteLength(texts[i]) + (l.terminated ? 1 : 0);
      expect(l.end).toBe(at);
    }
  } finally {
    await fh.close();
  }
});
