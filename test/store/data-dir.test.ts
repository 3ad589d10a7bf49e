/**
 * Data dir trust (issue 11.7): a data dir others could write to, or owned by another user, is
 * refused at start with a one-line fix; files are replaced through random O_EXCL|O_NOFOLLOW temp
 * files, so a link planted where the old fixed temp name was cannot redirect a write.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic, writeFileAtomicSync } from '../../src/files.js';
import { MAX_AUDIT_RECORD_BYTES } from '../../src/store/bounded-audit.js';
import { openStore, STORE_FILES, verifyAuditFile } from '../../src/store/index.js';

let root: string;
let dataDir: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'jit-datadir-'));
  dataDir = join(root, 'data');
  mkdirSync(dataDir, { mode: 0o700 });
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const isRoot = process.getuid?.() === 0;

describe('data dir trust', () => {
  it.each([
    ['group-writable', 0o770],
    ['world-writable', 0o707],
    ['sticky but world-writable', 0o1777],
  ])('fail/%s data dir is refused with the chmod that fixes it', async (_name, mode) => {
    chmodSync(dataDir, mode);
    const err = await openStore(dataDir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'invalid_config' });
    const message = (err as Error).message;
    expect(message).toContain(`chmod go-w ${dataDir}`);
    expect(message).not.toContain('\n');
    expect(readdirSync(dataDir)).toEqual([]); // refused before the lock or any file was made
  });

  it('ok/group- and world-readable (not writable) is accepted', async () => {
    chmodSync(dataDir, 0o755);
    await (await openStore(dataDir)).close();
  });

  // Needs root to give the directory to another user.
  it.skipIf(!isRoot)('fail/data dir owned by another user is refused with the chown that fixes it', async () => {
    chownSync(dataDir, 65534, 65534);
    await expect(openStore(dataDir)).rejects.toMatchObject({ code: 'invalid_config', message: expect.stringContaining(`chown ${process.getuid!()} ${dataDir}`) });
  });
});

describe('atomic writer', () => {
  it('ok/a symlink planted at the old fixed temp name is neither followed nor used', async () => {
    const victim = join(root, 'victim');
    writeFileSync(victim, 'precious\n');
    // The attack on the previous writer: `.state.json.tmp` → victim, then wait for a state write.
    symlinkSync(victim, join(dataDir, `.${STORE_FILES.state}.tmp`));
    const store = await openStore(dataDir);
    await store.state.putToken('a'.repeat(64), { user: 'alice', expiresAt: Date.now() + 60_000 });
    await store.close();
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(JSON.parse(readFileSync(join(dataDir, STORE_FILES.state), 'utf8')).tokens).toHaveLength(1);
  });

  it('ok/sync and async writers leave the content, the mode, and no temp file behind', async () => {
    const a = join(root, 'a');
    const b = join(root, 'b');
    writeFileAtomicSync(a, 'one', 0o640);
    await writeFileAtomic(b, 'two', 0o600);
    await writeFileAtomic(b, 'three');
    expect([readFileSync(a, 'utf8'), readFileSync(b, 'utf8')]).toEqual(['one', 'three']);
    expect(readdirSync(root).sort()).toEqual(['a', 'b', 'data']);
  });
});

describe('audit record size bound', () => {
  it('fail/an oversized audit record is refused and nothing is written; the chain stays valid', async () => {
    const store = await openStore(dataDir);
    await store.audit.append({ type: 'request', id: 'req_1' });
    await expect(store.audit.append({ type: 'request', id: 'req_2', reason: 'x'.repeat(MAX_AUDIT_RECORD_BYTES) })).rejects.toMatchObject({ code: 'bad_request' });
    await store.audit.append({ type: 'request', id: 'req_3' });
    expect(store.audit.head().seq).toBe(2);
    await store.close();
    expect(await verifyAuditFile(join(dataDir, STORE_FILES.audit))).toMatchObject({ ok: true, records: 2 });
  });
});
