/**
 * One daemon per data dir: lowdb state and the audit chain are single-writer by design.
 * `<dir>/jit-sshd.lock` is created exclusively and holds the owner's pid. A lock whose pid is
 * gone (SIGKILL, power loss) is stale and taken over, so a killed daemon can always restart.
 */
import { readFileSync, unlinkSync } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { JitError } from '../errors.js';
import { errorCode } from '../files.js';

export const LOCK_FILE = 'jit-sshd.lock';

export interface DataDirLock {
  readonly file: string;
  release(): Promise<void>;
}

/** Lock files held by this process (a pid match alone could be a previous incarnation's). */
const heldHere = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return errorCode(e) === 'EPERM';
  }
  // A zombie still answers kill(0) but holds nothing.
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return true;
  }
}

async function readPid(file: string): Promise<number | undefined | 'gone'> {
  try {
    const text = await readFile(file, 'utf8');
    return /^\d+\n?$/.test(text) ? Number(text.trim()) : undefined;
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return 'gone';
    throw e;
  }
}

export async function acquireDataDirLock(dir: string): Promise<DataDirLock> {
  const file = resolve(join(dir, LOCK_FILE));
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fh = await open(file, 'wx', 0o600);
      try {
        await fh.writeFile(`${process.pid}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      return held(file);
    } catch (e) {
      if (errorCode(e) !== 'EEXIST') {
        throw new JitError('unavailable', `cannot create lock in ${dir}: ${errorCode(e)}`, { cause: e });
      }
    }
    let pid = await readPid(file);
    if (pid === undefined) {
      // Empty or garbled: maybe its creator is between open and write. Look once more.
      await new Promise((r) => setTimeout(r, 100));
      pid = await readPid(file);
    }
    if (pid === 'gone') continue;
    const ours = pid === process.pid;
    if (pid !== undefined && (ours ? heldHere.has(file) : isAlive(pid))) {
      throw new JitError('conflict', `another jit-sshd (pid ${pid}) is using ${dir}`);
    }
    // Stale. Two starters racing over the same stale lock could both get here; the loser's
    // unlink may remove the winner's fresh lock. Starting two daemons at once on a dir whose
    // owner just died is the one case this file lock does not cover.
    await unlink(file).catch((err: unknown) => {
      if (errorCode(err) !== 'ENOENT') throw err;
    });
  }
  throw new JitError('conflict', `could not take the lock ${file}`);
}

function held(file: string): DataDirLock {
  heldHere.add(file);
  const onExit = () => {
    try {
      if (readFileSync(file, 'utf8').trim() === String(process.pid)) unlinkSync(file);
    } catch {
      // Nothing to clean up.
    }
  };
  process.on('exit', onExit);
  let released = false;
  return {
    file,
    async release() {
      if (released) return;
      released = true;
      process.off('exit', onExit);
      heldHere.delete(file);
      if ((await readPid(file)) === process.pid) await unlink(file).catch(() => undefined);
    },
  };
}
