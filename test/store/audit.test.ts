import { createHash } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JitError } from '../../src/errors.js';
import {
  GENESIS_HASH,
  canonicalJson,
  openAuditLog,
  verifyAuditFile,
  type AuditFileHandle,
  type AuditFileOps,
} from '../../src/store/audit.js';

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'jit-audit-'));
  file = join(dir, 'audit.jsonl');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const fixedClock = () => new Date('2030-01-02T03:04:05.000Z');

async function writeRecords(n: number): Promise<void> {
  const log = await openAuditLog(file, { clock: fixedClock });
  for (let i = 1; i <= n; i++) await log.append({ type: 'issue', id: `req_${i}`, serial: String(i) });
  await log.close();
}

const lines = () => readFileSync(file, 'utf8').split('\n').filter(Boolean);
const writeLines = (ls: string[]) => writeFileSync(file, ls.map((l) => l + '\n').join(''));

/** Real file handles, with failures and sync counting switched on from the test. */
function faultyFs() {
  const state = { syncs: 0, fail: undefined as undefined | { code: string; at: 'write' | 'partial' | 'sync' | 'all' } };
  const boom = (code: string) => Object.assign(new Error(`simulated ${code}`), { code });
  const ops: AuditFileOps = {
    async openAppend(f) {
      if (state.fail?.at === 'all') throw boom(state.fail.code);
      const fh = await open(f, 'a', 0o600);
      const h: AuditFileHandle = {
        async write(buf, off, len) {
          const fail = state.fail;
          if (fail?.at === 'write' || fail?.at === 'all') throw boom(fail.code);
          if (fail?.at === 'partial') {
            await fh.write(buf, off, Math.max(1, Math.floor(len / 2)));
            throw boom(fail.code);
          }
          return fh.write(buf, off, len);
        },
        async datasync() {
          state.syncs++;
          if (state.fail?.at === 'sync' || state.fail?.at === 'all') throw boom(state.fail.code);
          return fh.datasync();
        },
        async truncate(len) {
          if (state.fail?.at === 'all') throw boom(state.fail.code);
          return fh.truncate(len);
        },
        close: () => fh.close(),
      };
      return h;
    },
  };
  return { ops, state };
}

describe('canonical JSON', () => {
  it('ok/sorts keys recursively, keeps array order, drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } })).toBe('{"a":{"d":[3,{"y":2,"z":1}]},"b":1}');
  });
});

describe('audit chain', () => {
  it('ok/records chain from the genesis hash and verify', async () => {
    const log = await openAuditLog(file, { clock: fixedClock });
    const r1 = await log.append({ type: 'request', id: 'req_a', user: 'alice' });
    const r2 = await log.append({ type: 'issue', id: 'req_a', serial: 7n });
    expect(r1.seq).toBe(1);
    expect(r1.prevHash).toBe(GENESIS_HASH);
    expect(r1.time).toBe('2030-01-02T03:04:05.000Z');
    const { hash, ...rest } = r1;
    expect(hash).toBe(createHash('sha256').update(GENESIS_HASH + canonicalJson(rest)).digest('hex'));
    expect(r2.prevHash).toBe(r1.hash);
    expect(r2.serial).toBe('7'); // bigint written as a decimal string
    expect(log.head()).toEqual({ seq: 2, hash: r2.hash });
    await log.close();
    expect(await verifyAuditFile(file)).toEqual({ ok: true, records: 2, lastSeq: 2, lastHash: r2.hash });
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('ok/an empty log verifies', async () => {
    writeFileSync(file, '');
    expect(await verifyAuditFile(file)).toEqual({ ok: true, records: 0, lastSeq: 0, lastHash: GENESIS_HASH });
  });

  it('fail/an edited record breaks at its seq', async () => {
    await writeRecords(10);
    const ls = lines();
    ls[6] = ls[6].replace('"req_7"', '"req_X"');
    writeLines(ls);
    const v = await verifyAuditFile(file);
    expect(v).toMatchObject({ ok: false, records: 6, firstBreak: { seq: 7, line: 7, reason: 'hash_mismatch' } });
  });

  it('fail/an edited record with a recomputed hash breaks at the next seq', async () => {
    await writeRecords(10);
    const ls = lines();
    const { hash: _old, ...rec } = JSON.parse(ls[6]);
    rec.id = 'req_X';
    const hash = createHash('sha256').update(rec.prevHash + canonicalJson(rec)).digest('hex');
    ls[6] = JSON.stringify({ ...rec, hash });
    writeLines(ls);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: false, firstBreak: { seq: 8, reason: 'prev_hash_mismatch' } });
  });

  it('fail/a deleted record breaks at the missing seq', async () => {
    await writeRecords(10);
    const ls = lines();
    ls.splice(4, 1);
    writeLines(ls);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: false, records: 4, firstBreak: { seq: 5, found: 6, reason: 'seq_gap' } });
  });

  it('fail/reordered records break at the first displaced seq', async () => {
    await writeRecords(10);
    const ls = lines();
    [ls[4], ls[5]] = [ls[5], ls[4]];
    writeLines(ls);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: false, firstBreak: { seq: 5, line: 5 } });
  });

  it('fail/a duplicated record breaks', async () => {
    await writeRecords(4);
    const ls = lines();
    ls.splice(2, 0, ls[1]);
    writeLines(ls);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: false, firstBreak: { seq: 3, found: 2, reason: 'seq_out_of_order' } });
  });

  it('fail/bad JSON breaks at its line', async () => {
    await writeRecords(5);
    const ls = lines();
    ls[2] = '{"seq":3, oops';
    writeLines(ls);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: false, firstBreak: { seq: 3, line: 3, reason: 'bad_json' } });
  });

  it('fail/opening a broken log is refused, naming the seq', async () => {
    await writeRecords(6);
    const ls = lines();
    ls[3] = ls[3].replace('"issue"', '"deny"');
    writeLines(ls);
    const err = await openAuditLog(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JitError);
    expect((err as JitError).message).toMatch(/broken at seq 4/);
  });

  it('fail/a missing file is not verified as ok', async () => {
    await expect(verifyAuditFile(join(dir, 'nope.jsonl'))).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe('torn last line', () => {
  it('ok/is cut away on open with a warning, and the chain continues', async () => {
    await writeRecords(3);
    const sizeBefore = statSync(file).size;
    appendFileSync(file, '{"seq":4,"time":"2030-01-02T03:04:0');
    expect(await verifyAuditFile(file)).toMatchObject({ ok: false, firstBreak: { seq: 4, reason: 'torn_line' } });

    const log = await openAuditLog(file, { clock: fixedClock });
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]).toMatch(/incomplete last line after seq 3/);
    expect(statSync(file).size).toBe(sizeBefore);
    expect((await log.append({ type: 'issue' })).seq).toBe(4);
    await log.close();
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 4 });
  });

  it('ok/a torn tail of NUL bytes (delayed allocation after power loss) is cut too', async () => {
    await writeRecords(2);
    appendFileSync(file, Buffer.alloc(100));
    const log = await openAuditLog(file);
    expect(log.warnings).toHaveLength(1);
    expect((await log.append({ type: 'issue' })).seq).toBe(3);
    await log.close();
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 3 });
  });
});

describe('group commit', () => {
  it('ok/32 concurrent appends get consecutive seqs, a valid chain and fewer syncs', async () => {
    const { ops, state } = faultyFs();
    const log = await openAuditLog(file, { fs: ops });
    const recs = await Promise.all(Array.from({ length: 32 }, (_, i) => log.append({ type: 'request', n: i })));
    expect(recs.map((r) => r.seq)).toEqual(Array.from({ length: 32 }, (_, i) => i + 1));
    // Each append resolves with its own record, in call order.
    expect(recs.map((r) => r.n)).toEqual(Array.from({ length: 32 }, (_, i) => i));
    expect(state.syncs).toBeGreaterThan(0);
    expect(state.syncs).toBeLessThan(32);
    await log.close();
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 32 });
  });

  it('ok/appends that arrive during a sync share the next one', async () => {
    const { ops, state } = faultyFs();
    const log = await openAuditLog(file, { fs: ops });
    const first = log.append({ type: 'a' });
    await new Promise((r) => setImmediate(r)); // first batch is now in flight
    const rest = Array.from({ length: 20 }, () => log.append({ type: 'b' }));
    await Promise.all([first, ...rest]);
    expect(state.syncs).toBe(2);
    await log.close();
  });

  it('ok/throughput at concurrency 32', async () => {
    const log = await openAuditLog(file);
    const total = 20_000;
    let issued = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (issued < total) {
          issued++;
          await log.append({ type: 'issue', id: `req_${issued}`, user: 'alice', target: 'prod-db', serial: String(issued) });
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    await log.close();
    const rate = Math.round(total / secs);
    console.log(`audit append throughput at concurrency 32: ${rate}/s (${total} in ${secs.toFixed(2)} s)`);
    expect(rate).toBeGreaterThan(2000);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: total });
  });
});

describe('write failures', () => {
  for (const [code, at] of [
    ['ENOSPC', 'write'],
    ['ENOSPC', 'partial'],
    ['EIO', 'sync'],
    ['EROFS', 'all'],
  ] as const) {
    it(`fail/${code} at ${at} → 'unavailable', file cut back, chain continues after recovery`, async () => {
      const { ops, state } = faultyFs();
      const log = await openAuditLog(file, { fs: ops });
      await log.append({ type: 'request', n: 1 });
      await log.append({ type: 'request', n: 2 });
      const goodSize = statSync(file).size;

      state.fail = { code, at };
      const failed = await Promise.allSettled([log.append({ type: 'issue', n: 3 }), log.append({ type: 'issue', n: 4 })]);
      for (const f of failed) {
        expect(f.status).toBe('rejected');
        const e = (f as PromiseRejectedResult).reason as JitError;
        expect(e.code).toBe('unavailable');
        expect(e.message).toBe(`audit log not writable: ${code}`);
      }
      expect(log.head().seq).toBe(2);
      if (at !== 'all') expect(statSync(file).size).toBe(goodSize);

      state.fail = undefined;
      const next = await log.append({ type: 'issue', n: 5 });
      expect(next.seq).toBe(3);
      await log.close();
      expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 3 });
      expect(lines().map((l) => JSON.parse(l).n)).toEqual([1, 2, 5]);
    });
  }

  it('fail/a real full device (ENOSPC from /dev/full) rejects with unavailable', async () => {
    const devFull: AuditFileOps = {
      async openAppend(f) {
        const real = await open(f, 'a');
        const full = await open('/dev/full', 'w');
        return {
          write: (b, o, l) => full.write(b, o, l),
          datasync: () => real.datasync(),
          truncate: (n) => real.truncate(n),
          close: async () => {
            await full.close();
            await real.close();
          },
        };
      },
    };
    const log = await openAuditLog(file, { fs: devFull });
    await expect(log.append({ type: 'issue' })).rejects.toMatchObject({ code: 'unavailable', message: 'audit log not writable: ENOSPC' });
    await log.close();
  });
});

describe('events', () => {
  it('fail/refuses secret-named and reserved fields', async () => {
    const log = await openAuditLog(file);
    await expect(log.append({ type: 'auth', token: 'jit_abc' })).rejects.toThrow(/token/);
    await expect(log.append({ type: 'auth', details: { privateKey: 'x' } })).rejects.toThrow(/privateKey/);
    await expect(log.append({ type: 'auth', seq: 99 })).rejects.toThrow(/seq/);
    await expect(log.append({ type: '' })).rejects.toThrow(/type/);
    expect(log.head().seq).toBe(0);
    await log.close();
    await expect(log.append({ type: 'x' })).rejects.toMatchObject({ code: 'unavailable' });
  });
});

describe('tail', () => {
  it('ok/returns durable records after a seq, bounded by limit', async () => {
    const log = await openAuditLog(file);
    await Promise.all(Array.from({ length: 3000 }, (_, i) => log.append({ type: 'request', n: i + 1 })));
    expect((await log.tail(1500, 10)).map((r) => r.seq)).toEqual([1501, 1502, 1503, 1504, 1505, 1506, 1507, 1508, 1509, 1510]);
    expect((await log.tail(2995, 100)).map((r) => r.seq)).toEqual([2996, 2997, 2998, 2999, 3000]);
    expect((await log.tail(0, 2)).map((r) => r.n)).toEqual([1, 2]);
    expect(await log.tail(3000, 10)).toEqual([]);
    await log.close();
    // The offset index is rebuilt on open.
    const again = await openAuditLog(file);
    expect((await again.tail(2047, 2)).map((r) => r.seq)).toEqual([2048, 2049]);
    await again.close();
  });
});
