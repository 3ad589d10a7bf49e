import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSerialAllocator, serialFile, type SerialReservations } from '../../src/store/serials.js';

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'jit-serial-'));
  file = join(dir, 'serial');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The real file store, counting saves and failing on demand. */
function countingStore(inner: SerialReservations) {
  const s = { saves: 0, fail: false };
  const store: SerialReservations = {
    load: () => inner.load(),
    async save(upTo) {
      s.saves++;
      if (s.fail) throw Object.assign(new Error('disk full'), { code: 'ENOSPC' });
      await inner.save(upTo);
    },
  };
  return { store, s };
}

async function take(alloc: { next(): Promise<bigint> }, n: number): Promise<bigint[]> {
  const out: bigint[] = [];
  for (let i = 0; i < n; i++) out.push(await alloc.next());
  return out;
}

describe('serial allocator', () => {
  it('ok/starts at 1, concurrent callers get unique consecutive serials, one durable save per block', async () => {
    const { store, s } = countingStore(serialFile(file));
    const alloc = await openSerialAllocator(store, { blockSize: 1000 });
    const got = await Promise.all(Array.from({ length: 5000 }, () => alloc.next()));
    await alloc.idle?.();
    expect(new Set(got).size).toBe(5000);
    expect([...got].sort((a, b) => (a < b ? -1 : 1))).toEqual(Array.from({ length: 5000 }, (_, i) => BigInt(i + 1)));
    // One save per block, plus at most one for the block reserved ahead of need.
    expect(s.saves).toBeGreaterThanOrEqual(5);
    expect(s.saves).toBeLessThanOrEqual(6);
    expect(BigInt(readFileSync(file, 'utf8').trim())).toBeGreaterThanOrEqual(5000n);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('ok/a reservation is durable before any serial of its block is handed out', async () => {
    const seen: bigint[] = [];
    const store: SerialReservations = {
      load: async () => 0n,
      save: async (upTo) => {
        seen.push(upTo);
      },
    };
    const alloc = await openSerialAllocator(store, { blockSize: 10 });
    for (const serial of await take(alloc, 25)) expect(seen.some((upTo) => upTo >= serial)).toBe(true);
    // Each block is reserved (one save, consecutive) before it is needed: the next one once half is used.
    expect(seen.slice(0, 3)).toEqual([10n, 20n, 30n]);
    expect(seen.length).toBeLessThanOrEqual(4);
  });

  it('ok/unique across close and reopen', async () => {
    const first = await openSerialAllocator(file, { blockSize: 100 });
    const a = await take(first, 150);
    await first.idle?.();
    const second = await openSerialAllocator(file, { blockSize: 100 });
    const b = await take(second, 150);
    await second.idle?.();
    expect(new Set([...a, ...b]).size).toBe(300);
    expect(b[0] > a.at(-1)!).toBe(true); // the rest of a's reservation is skipped, never reissued
  });

  it('ok/after a simulated crash the next serial is above every one handed out', async () => {
    let alloc = await openSerialAllocator(file, { blockSize: 50 });
    const before = await take(alloc, 73);
    // "Crash": drop the allocator without any shutdown, as SIGKILL would.
    alloc = await openSerialAllocator(file, { blockSize: 50 });
    const after = await alloc.next();
    expect(before.every((s) => after > s)).toBe(true);
    await alloc.idle?.();
  });

  it('ok/honours serialStart and a floor learned from the audit log', async () => {
    expect(await (await openSerialAllocator(file, { serialStart: 1_000_000n })).next()).toBe(1_000_000n);
    rmSync(file);
    expect(await (await openSerialAllocator(file, { floor: 4242n })).next()).toBe(4243n);
  });

  it('fail/a failed reservation hands out nothing, then recovers', async () => {
    const { store, s } = countingStore(serialFile(file));
    const alloc = await openSerialAllocator(store, { blockSize: 10 });
    await take(alloc, 4); // the next block is reserved ahead once half of this one is used…
    s.fail = true; // …and that fails from here on, silently, until someone runs dry
    expect(await take(alloc, 6)).toEqual([5n, 6n, 7n, 8n, 9n, 10n]);
    await alloc.idle?.();
    await expect(alloc.next()).rejects.toMatchObject({ code: 'unavailable', message: 'cannot reserve certificate serials: ENOSPC' });
    s.fail = false;
    expect(await alloc.next()).toBe(11n);
  });

  it('fail/a corrupt reservation file refuses to start rather than guess', async () => {
    await serialFile(file).save(5n);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, 'garbage');
    await expect(openSerialAllocator(file)).rejects.toThrow(/corrupt/);
  });
});
