import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireDataDirLock, LOCK_FILE } from '../../src/store/lock.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'jit-lock-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const lockFile = () => join(dir, LOCK_FILE);

function startSleeper(script = 'sleep 30') {
  const child = spawn('sh', ['-c', script], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  return { pid: child.pid!, kill: async () => (child.kill('SIGKILL'), await exited), exited };
}

describe('data dir lock', () => {
  it('ok/creates the lock with our pid and removes it on release', async () => {
    const lock = await acquireDataDirLock(dir);
    expect(readFileSync(lockFile(), 'utf8')).toBe(`${process.pid}\n`);
    await lock.release();
    expect(existsSync(lockFile())).toBe(false);
    await (await acquireDataDirLock(dir)).release();
  });

  it('fail/a second lock in the same process is refused', async () => {
    const lock = await acquireDataDirLock(dir);
    await expect(acquireDataDirLock(dir)).rejects.toMatchObject({
      code: 'conflict',
      message: `another jit-sshd (pid ${process.pid}) is using ${dir}`,
    });
    await lock.release();
  });

  it('fail/a lock held by a live process is refused', async () => {
    const other = startSleeper();
    try {
      writeFileSync(lockFile(), `${other.pid}\n`);
      await expect(acquireDataDirLock(dir)).rejects.toMatchObject({ code: 'conflict', message: expect.stringContaining(`pid ${other.pid}`) });
      expect(readFileSync(lockFile(), 'utf8')).toBe(`${other.pid}\n`);
    } finally {
      await other.kill();
    }
  });

  it('ok/a SIGKILLed owner leaves a stale lock that is taken over', async () => {
    const other = startSleeper(`echo $$ > '${lockFile()}'; exec sleep 30`);
    for (let i = 0; i < 100 && !existsSync(lockFile()); i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 50));
    await expect(acquireDataDirLock(dir)).rejects.toMatchObject({ code: 'conflict' });
    await other.kill();
    const lock = await acquireDataDirLock(dir);
    expect(readFileSync(lockFile(), 'utf8')).toBe(`${process.pid}\n`);
    await lock.release();
  });

  it('ok/a lock naming our own pid but not held by us is a previous incarnation (container pid reuse)', async () => {
    writeFileSync(lockFile(), `${process.pid}\n`);
    const lock = await acquireDataDirLock(dir);
    await lock.release();
  });

  it('ok/an empty or garbled lock file is stale', async () => {
    writeFileSync(lockFile(), '');
    const lock = await acquireDataDirLock(dir);
    expect(readFileSync(lockFile(), 'utf8')).toBe(`${process.pid}\n`);
    await lock.release();
  });
});
