/**
 * The one atomic file writer. Replacing a small file so that a reader sees the old content or
 * the new, never a torn one, and the new content (and its name) survive a crash: a temp file
 * written with its final mode from the start (no window where a key is readable), fsync, rename,
 * fsync of the directory.
 *
 * The temp file gets a random name and is created with O_EXCL|O_NOFOLLOW: a link (or file)
 * someone planted at a predictable name can neither redirect the write nor be clobbered, even
 * when the daemon runs as root. A sync flavour (CLI, key files) and an async one (the daemon's
 * hot paths) share everything but the system calls.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, constants, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { chmod, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Create only, never through a symlink, write only. */
const TEMP_FLAGS = constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_WRONLY;

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(8).toString('hex')}`);
}

const asBuffer = (data: string | Uint8Array): Uint8Array => (typeof data === 'string' ? Buffer.from(data) : data);

export function writeFileAtomicSync(path: string, data: string | Uint8Array, mode: number): void {
  const tmp = tempPathFor(path);
  const fd = openSync(tmp, TEMP_FLAGS, mode);
  try {
    writeSync(fd, asBuffer(data));
    fsyncSync(fd);
    closeSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  chmodSync(tmp, mode); // the umask may have narrowed openSync's mode
  renameSync(tmp, path);
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/**
 * As writeFileAtomicSync, without blocking the event loop (default mode 0600). `data` may also
 * be produced piece by piece (a large file is then never held in memory whole).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array | AsyncIterable<string>, mode = 0o600): Promise<void> {
  const tmp = tempPathFor(path);
  const fh = await open(tmp, TEMP_FLAGS, mode);
  try {
    if (typeof data === 'string' || data instanceof Uint8Array) await fh.writeFile(asBuffer(data));
    else for await (const piece of data) await fh.write(piece);
    await fh.datasync();
    await fh.close();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
  await chmod(tmp, mode);
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** The errno-style code of a filesystem error, for messages that stay free of paths and stacks. */
export function errorCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'EIO';
}
