import { appendFileSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, STORE_FILES, verifyAuditFile } from '../../src/store/index.js';

let root: string;
let dataDir: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'jit-store-'));
  dataDir = join(root, 'data');
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('openStore', () => {
  it('ok/creates a 0700 data dir with lock, audit, state and serial files; close releases the lock', async () => {
    const store = await openStore(dataDir);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(existsSync(join(dataDir, STORE_FILES.lock))).toBe(true);
    const serial = await store.serials.next();
    expect(serial).toBe(1n);
    await store.audit.append({ type: 'issue', serial });
    await store.state.putToken('0'.repeat(64), { user: 'alice', expiresAt: Date.now() + 60_000 });
    await store.close();
    for (const f of [STORE_FILES.audit, STORE_FILES.state, STORE_FILES.serial]) expect(existsSync(join(dataDir, f))).toBe(true);
    expect(existsSync(join(dataDir, STORE_FILES.lock))).toBe(false);
    expect(await verifyAuditFile(join(dataDir, STORE_FILES.audit))).toMatchObject({ ok: true, records: 1 });
  });

  it('fail/a second store on the same data dir is refused', async () => {
    const store = await openStore(dataDir);
    await expect(openStore(dataDir)).rejects.toMatchObject({ code: 'conflict', message: expect.stringContaining('another jit-sshd') });
    await store.close();
    await (await openStore(dataDir)).close();
  });

  it('ok/serials never start below one the audit log has seen, even if the reservation file is lost', async () => {
    const store = await openStore(dataDir, { serialStart: 4990n });
    for (let i = 0; i < 11; i++) await store.audit.append({ type: 'issue', serial: await store.serials.next() });
    await store.close();
    rmSync(join(dataDir, STORE_FILES.serial));
    const again = await openStore(dataDir);
    expect(await again.serials.next()).toBe(5001n);
    await again.close();
  });

  it('ok/a torn audit line is repaired on open and reported in warnings', async () => {
    const store = await openStore(dataDir);
    await store.audit.append({ type: 'request' });
    await store.close();
    appendFileSync(join(dataDir, STORE_FILES.audit), '{"seq":2,');
    const again = await openStore(dataDir);
    expect(again.warnings).toHaveLength(1);
    expect((await again.audit.append({ type: 'request' })).seq).toBe(2);
    await again.close();
  });

  it('fail/a broken audit chain refuses to open and leaves no lock behind', async () => {
    const store = await openStore(dataDir);
    await store.audit.append({ type: 'request' });
    await store.audit.append({ type: 'request' });
    await store.close();
    const f = join(dataDir, STORE_FILES.audit);
    const { readFileSync, writeFileSync } = await import('node:fs');
    writeFileSync(f, readFileSync(f, 'utf8').replace('"request"', '"deny"'));
    await expect(openStore(dataDir)).rejects.toThrow(/broken at seq 1/);
    expect(existsSync(join(dataDir, STORE_FILES.lock))).toBe(false);
  });
});
